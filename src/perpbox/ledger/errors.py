"""The ledger's coded errors: one class per rule the ledger checks, each with a stable ``code``.

Codes are grouped by what the rule is about (the codes never change meaning; a new rule takes a
new code):

* 100-199: amounts stated by an operation (deposit, withdrawal, transfer);
* 200-299: accounts;
* 300-399: positions (size, entry cost basis, isolated bucket, margin settings);
* 400-499: the batch as a whole (conservation);
* 500-599: fills (the ``apply_fill`` fast path's own checks).

Every error is a ``LedgerError``, so ``except LedgerError`` catches them all; ``REGISTRY`` maps a
code back to its class.  The ledger raises them as a backstop: the exchange validates commands
first, so on a valid event stream none is ever raised.
"""

from __future__ import annotations

from typing import ClassVar, Final, TypeVar


class LedgerError(Exception):
    """A change the ledger refuses.  ``code`` and ``name`` identify the rule; the message says
    which account or amount broke it."""

    code: ClassVar[int] = 0
    name: ClassVar[str] = "LEDGER_ERROR"

    def __str__(self) -> str:
        detail = super().__str__()
        return f"[{self.code} {self.name}] {detail}" if detail else f"[{self.code} {self.name}]"


REGISTRY: Final[dict[int, type[LedgerError]]] = {}

_E = TypeVar("_E", bound=type[LedgerError])


def _register(cls: _E) -> _E:
    if cls.code in REGISTRY:
        raise RuntimeError(f"ledger error code {cls.code} registered twice")
    REGISTRY[cls.code] = cls
    return cls


# -- 100: amounts ------------------------------------------------------------------------------
@_register
class NonPositiveAmount(LedgerError):
    """An operation's stated amount (deposit, withdrawal, transfer) must be > 0, and a batch's
    external flows (deposits, withdrawals) must be >= 0."""

    code = 100
    name = "NON_POSITIVE_AMOUNT"


# -- 200: accounts -----------------------------------------------------------------------------
@_register
class UnknownAccount(LedgerError):
    """Cash may be taken only from an account the ledger holds, and a position change must name
    an account object registered in this ledger (a credit may create a new account)."""

    code = 200
    name = "UNKNOWN_ACCOUNT"


@_register
class AccountExists(LedgerError):
    """A sub-account is created under an address no account has yet."""

    code = 201
    name = "ACCOUNT_EXISTS"


@_register
class NegativeSpotBalance(LedgerError):
    """A spot wallet (``spot:<user>``) never goes below zero (perp cross cash may: it is
    backed by the account's positions, and an ADL shortfall stays there)."""

    code = 202
    name = "NEGATIVE_SPOT_BALANCE"


# -- 300: positions ----------------------------------------------------------------------------
@_register
class UnknownPosition(LedgerError):
    """A position change must name the account's own position slot for that asset."""

    code = 300
    name = "UNKNOWN_POSITION"


@_register
class EntryInconsistent(LedgerError):
    """A position's cost basis ``entry_ntl`` is >= 0, and zero exactly when its size is zero."""

    code = 301
    name = "ENTRY_INCONSISTENT"


@_register
class BucketOnFlatPosition(LedgerError):
    """A position that ends flat keeps no isolated cash: its bucket is released to zero."""

    code = 302
    name = "BUCKET_ON_FLAT_POSITION"


@_register
class BucketOnCrossPosition(LedgerError):
    """A cross position has no isolated bucket (``iso_raw`` stays zero)."""

    code = 303
    name = "BUCKET_ON_CROSS_POSITION"


@_register
class BadLeverage(LedgerError):
    """A position's leverage is an integer >= 1 (isolated margin divides by it)."""

    code = 304
    name = "BAD_LEVERAGE"


@_register
class ModeSwitchOnOpenPosition(LedgerError):
    """Cross / isolated can be switched only while the position is flat (before and after)."""

    code = 305
    name = "MODE_SWITCH_ON_OPEN_POSITION"


# -- 400: the batch ----------------------------------------------------------------------------
@_register
class NotConserved(LedgerError):
    """The batch's cash changes (cross cash and isolated buckets) sum to its external flow:
    deposits - withdrawals + clearing (funding and settlement, which net to zero over a round)."""

    code = 400
    name = "NOT_CONSERVED"


# -- 500: fills --------------------------------------------------------------------------------
@_register
class BadFill(LedgerError):
    """A fill has a positive size and a positive price."""

    code = 500
    name = "BAD_FILL"
