"""Points and wear estimators, for venues that publish their formula (hedging-bots.md §1, §5).

All amounts are ``Decimal`` parsed from ``str``, ``int`` or ``Decimal`` (a float is refused).  The
arithmetic runs in a local 28-digit context (so a caller's context cannot change it): for amounts
of ordinary size sums, differences and products are exact and the only rounding is a final
division, at 28 significant digits.

Lighter (weekly 250,000 points = 200,000 retail + 50,000 market makers):

* maker score ``score = volume + max(0, (volume − 2.5B) × 0.25)``, volume in USD: maker volume
  above $2.5B a week counts 1.25×;
* the market-maker pool is shared by score, with the LLP vault's share removed and the rest
  rescaled: ``points_i = share_i / (1 − share_llp) × pool`` (LLP 50%, A 30%, B 20% → A 30,000,
  B 20,000).

Wear (磨损, the farmers' definition): total loss on BOTH venues (fees + trading loss [+ funding])
divided by the volume traded on ONE venue, in basis points: ``wear_bps = 1e4 × loss / volume``.
A loss is positive; a negative wear is a net gain.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Context, Decimal, localcontext

Amount = str | int | Decimal

LIGHTER_MM_POOL = 50_000  # of the 250,000 weekly points
LIGHTER_BONUS_THRESHOLD = Decimal(2_500_000_000)  # USD of maker volume a week
LIGHTER_BONUS_RATE = Decimal("0.25")
BPS = 10_000

_CTX = Context(prec=28)


def to_decimal(value: Amount, name: str = "value") -> Decimal:
    """Parse an amount exactly; a float, a bool, NaN or an infinity is refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"{name} must be str, int or Decimal, not {type(value).__name__}")
    try:
        d = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except ArithmeticError as exc:  # decimal.InvalidOperation: "abc"
        raise ValueError(f"{name} is not a number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"{name} is not a finite number: {value!r}")
    return d


def lighter_maker_score(volume: Amount) -> Decimal:
    """Lighter's weekly maker score of ``volume`` USD: ``volume + max(0, (volume − 2.5B) × 0.25)``."""
    v = to_decimal(volume, "volume")
    if v < 0:
        raise ValueError(f"volume must not be negative, got {volume!r}")
    with localcontext(_CTX):
        return v + max(Decimal(0), (v - LIGHTER_BONUS_THRESHOLD) * LIGHTER_BONUS_RATE)


def lighter_mm_shares(volumes: Mapping[str, Amount]) -> dict[str, Decimal]:
    """Each account's share of the summed maker score, from its weekly maker volume (USD)."""
    scores = {k: lighter_maker_score(v) for k, v in volumes.items()}
    with localcontext(_CTX):
        total = sum(scores.values(), Decimal(0))
        if total <= 0:
            raise ValueError("the maker volumes sum to zero: no shares")
        return {k: s / total for k, s in scores.items()}


def lighter_mm_points(
    shares: Mapping[str, Amount], llp_key: str = "LLP", pool: Amount = LIGHTER_MM_POOL
) -> dict[str, Decimal]:
    """Market-maker points of every account but the LLP vault: ``share / (1 − share_llp) × pool``.

    ``shares`` are fractions of the summed maker score (``"0.3"`` = 30%), the LLP vault's under
    ``llp_key`` (absent = 0); they may cover only some accounts, so they must sum to at most 1.
    """
    parsed = {k: to_decimal(v, f"shares[{k!r}]") for k, v in shares.items()}
    pool_d = to_decimal(pool, "pool")
    if pool_d < 0:
        raise ValueError(f"pool must not be negative, got {pool!r}")
    for k, s in parsed.items():
        if not 0 <= s <= 1:
            raise ValueError(f"shares[{k!r}] must be between 0 and 1, got {s}")
    with localcontext(_CTX):
        if sum(parsed.values(), Decimal(0)) > 1:
            raise ValueError("shares sum to more than 1")
        rest = 1 - parsed.get(llp_key, Decimal(0))
        if rest <= 0:
            raise ValueError("the LLP vault holds the whole score: nothing to share")
        return {k: s * pool_d / rest for k, s in parsed.items() if k != llp_key}


def wear_bps(loss_usd: Amount, volume_usd: Amount) -> Decimal:
    """Wear in basis points: ``1e4 × loss / volume`` (loss positive; negative = a net gain)."""
    loss = to_decimal(loss_usd, "loss_usd")
    volume = to_decimal(volume_usd, "volume_usd")
    if volume <= 0:
        raise ValueError(f"volume_usd must be positive, got {volume_usd!r}")
    with localcontext(_CTX):
        return loss * BPS / volume


def farmers_wear_bps(loss_a: Amount, loss_b: Amount, volume_one_venue: Amount) -> Decimal:
    """The farmers' wear of a hedged pair: both venues' losses over the volume of ONE venue (not
    the two venues' combined volume, which would halve it)."""
    with localcontext(_CTX):
        loss = to_decimal(loss_a, "loss_a") + to_decimal(loss_b, "loss_b")
    return wear_bps(loss, volume_one_venue)
