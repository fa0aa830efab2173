"""Vectorised liquidation pre-filter: which accounts *may* be below maintenance margin.

``PositionIndex`` mirrors every open position of a ``Ledger`` in numpy arrays, kept in step by
``sync`` with the accounts a tick touched, so that one ``candidates(prices)`` call screens every
account in a few passes over the arrays.  It is a filter, not a verdict: it may return accounts
that are healthy (a relative margin of ``REL_MARGIN`` plus one micro-USDC per position), never
omits one that the exact integer check of ``risk.margin.MarginView`` flags, and the caller
confirms each candidate with that exact check.

The exact rule, in integers (``n = szi * price``, ``A = |n|``, ``MM(A)`` the margin table, rounded
up): an account is liquidatable when ``raw_usd + Σ_cross n < Σ_cross MM(A)`` (and it holds a cross
position), or when some isolated position has ``iso_raw + n < MM(A)``.  Positions of size 0 carry
no exposure and are not indexed.

Maintenance margin as a max of lines.  ``MM(A) = ceil(A * mmr_t - d_t)`` for the tier ``t`` that
``A`` falls in; a table whose rates rise with the tiers (every real one) is convex, so the line of
the active tier is the largest: ``MM(A) < max_t(A * mmr_t - d_t) + 1``.  If a table's rates did not
rise, the max over lines still bounds the active line from above, so the filter stays safe.  Most
positions sit in tier 0 (``d_0 = 0``), whose line folds into one per-(asset, side) factor:
``n - k * A * mmr_0 = szi * price * (1 -/+ k * mmr_0)``; only positions at or above the second tier's
lower bound evaluate the padded ``[assets, tiers]`` tables.

Error analysis (why float64 cannot miss an account).  Per account the filter evaluates

    S = raw + Σ_i (n_i - k * (L_i + 1)),   k = 1 + REL_MARGIN,   L_i >= A_i * mmr_t - d_t (active t)

and flags ``S < 0``; ``M' = Σ (L_i + 1)`` bounds the exact ``M = Σ MM(A_i)`` from above.  Every
input converts to float64 with relative error ``u = 2**-53``, and each product, difference and
the ``bincount`` summation (sequential per account) adds a rounding, so with ``m`` positions the
computed ``S`` is within ``g * (|raw| + G + k * M')`` of the real one, ``g = (m + 8) * u`` and
``G = Σ A_i``.  Since ``L_i >= A_i * mmr_0``, ``G <= R * M'`` with ``R = 1 / min(mmr_0)``.  If the
exact check flags the account, ``V = raw + Σ n_i <= M - 1`` (integers), hence the real
``S <= V - k * M' <= -REL_MARGIN * M' - 1``; and then either ``raw <= M' + G`` (error at most
``g * (2R + 3) * M'``) or ``raw < 0`` (error ``<= g * (|raw| + ...)`` is outweighed by ``raw`` itself,
which already makes ``S`` negative by more than ``G + 2M'`` once ``|raw| > (R + 2) M'``).  So ``S``
stays negative whenever ``g * (2R + 4) <= REL_MARGIN``: with ``REL_MARGIN = 1e-9`` that holds for
accounts of up to 1,000 positions and ``mmr_0 >= 1 / MAX_R`` (``MAX_R = 4000``, i.e. leverage up
to 2000x; enforced when a market is first seen).  An isolated position is the same case with
``m = 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from perpbox.ledger.ledger import Ledger
from perpbox.market.spec import MarketSpec

REL_MARGIN = 1e-9
K = 1.0 + REL_MARGIN
MAX_R = 4000  # largest 1 / mmr_0 the error analysis above covers

F64 = npt.NDArray[np.float64]
IntP = npt.NDArray[np.intp]


class _Pool:
    """Dense arrays of one kind of position (cross or isolated); removal swaps the last entry in,
    so ``[:n]`` is always exactly the live positions.  ``iso`` holds ``iso_raw - K`` (the per
    position ``-K`` of the error analysis folded in), unused for cross."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self.row: IntP = np.zeros(capacity, np.intp)  # account row
        self.col: IntP = np.zeros(capacity, np.intp)  # asset column
        self.col2: IntP = np.zeros(capacity, np.intp)  # 2 * col + (szi < 0)
        self.szi: F64 = np.zeros(capacity)
        self.abs_szi: F64 = np.zeros(capacity)
        self.iso: F64 = np.zeros(capacity)
        self.w: F64 = np.zeros(capacity)  # scratch for candidates()
        self.thr: F64 = np.zeros(capacity)  # scratch

    def _grow(self) -> None:
        cap = 2 * len(self.row)
        for name in ("row", "col", "col2", "szi", "abs_szi", "iso", "w", "thr"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def set(self, slot: int, col: int, szi: int, iso_raw: int) -> None:
        s = float(szi)  # float-ok: pre-filter
        self.col[slot] = col
        self.col2[slot] = 2 * col + (szi < 0)
        self.szi[slot] = s
        self.abs_szi[slot] = abs(s)
        self.iso[slot] = float(iso_raw) - K  # float-ok: pre-filter

    def add(self, row: int, col: int, szi: int, iso_raw: int) -> int:
        if self.n == len(self.row):
            self._grow()
        slot = self.n
        self.n += 1
        self.row[slot] = row
        self.set(slot, col, szi, iso_raw)
        return slot

    def remove(self, slot: int) -> tuple[int, int] | None:
        """Free ``slot``; returns the (row, col) of the entry moved into it, if any."""
        last = self.n - 1
        self.n = last
        if slot == last:
            return None
        for a in (self.row, self.col, self.col2, self.szi, self.abs_szi, self.iso):
            a[slot] = a[last]
        return int(self.row[slot]), int(self.col[slot])


_Slot = tuple[_Pool, int, int, int]  # (pool, slot, szi, iso_raw) of an indexed position


class PositionIndex:
    """Every open position of a ledger as numpy arrays, for ``candidates``.  See the module doc."""

    def __init__(self, markets: dict[int, MarketSpec]) -> None:
        self.markets = markets  # read when an asset is first seen: markets may be added later
        self._reset()

    def _reset(self) -> None:
        self._cross = _Pool()
        self._iso = _Pool()
        self._addresses: list[str] = []  # row -> address
        self._row_of: dict[str, int] = {}
        self._where: list[dict[int, _Slot]] = []  # row -> {asset: where it is, as last read}
        self._raw: F64 = np.zeros(1024)  # row -> cross cash
        self._n_cross: npt.NDArray[np.int64] = np.zeros(1024, np.int64)  # row -> cross positions
        # per asset column: the asset, tier-0 rate, second tier's lower bound (inf if none) and the
        # padded tier tables, pre-multiplied by K
        self._assets: list[int] = []
        self._col_of: dict[int, int] = {}
        self._mmr0: list[float] = []
        self._lb1: list[float] = []
        self._kmmr: list[list[float]] = []
        self._kded: list[list[float]] = []
        self._tables: tuple[F64, F64, F64, F64] | None = None  # numpy forms, built lazily

    def __len__(self) -> int:
        """Number of indexed (non-zero) positions."""
        return self._cross.n + self._iso.n

    # -- keeping in step with the ledger ------------------------------------------------------
    def rebuild(self, ledger: Ledger) -> None:
        self._reset()
        self.sync(ledger, ledger.accounts)

    def sync(self, ledger: Ledger, addresses: Iterable[str]) -> None:
        """Re-read the given accounts (new ones get a row).  Costs under a microsecond per
        unchanged position and a few microseconds per added, resized or removed one."""
        cross_pool = self._cross
        for address in addresses:
            acct = ledger.accounts.get(address)
            row = self._row_of.get(address)
            if row is None:
                if acct is None:
                    continue
                row = self._new_row(address)
            where = self._where[row]
            live = {} if acct is None else {a: p for a, p in acct.positions.items() if p.szi}
            for asset in [a for a, at in where.items()
                          if a not in live or (at[0] is cross_pool) != live[a].is_cross]:
                self._remove(where, asset)
            n_cross = 0
            for asset, pos in live.items():
                szi, iso_raw = pos.szi, pos.iso_raw
                at = where.get(asset)
                if at is not None and at[2] == szi and at[3] == iso_raw:
                    n_cross += at[0] is cross_pool
                    continue
                pool = cross_pool if pos.is_cross else self._iso
                n_cross += pool is cross_pool
                col = self._col(asset)
                slot = pool.add(row, col, szi, iso_raw) if at is None else at[1]
                if at is not None:
                    pool.set(slot, col, szi, iso_raw)
                where[asset] = (pool, slot, szi, iso_raw)
            self._raw[row] = 0.0 if acct is None else float(acct.raw_usd)  # float-ok: pre-filter
            self._n_cross[row] = n_cross

    def _new_row(self, address: str) -> int:
        row = len(self._addresses)
        if row == len(self._raw):
            self._raw = np.concatenate([self._raw, np.zeros(row)])
            self._n_cross = np.concatenate([self._n_cross, np.zeros(row, np.int64)])
        self._addresses.append(address)
        self._row_of[address] = row
        self._where.append({})
        return row

    def _remove(self, where: dict[int, _Slot], asset: int) -> None:
        pool, slot, _, _ = where.pop(asset)
        moved = pool.remove(slot)
        if moved is not None:  # the pool's last entry now lives in `slot`
            row, col = moved
            other = self._where[row]
            moved_asset = self._assets[col]
            other[moved_asset] = (pool, slot, *other[moved_asset][2:])

    def _col(self, asset: int) -> int:
        col = self._col_of.get(asset)
        if col is not None:
            return col
        table = self.markets[asset].margin_table
        tiers = table.tiers
        if tiers[0].mmr * MAX_R < 1:
            raise ValueError(f"asset {asset}: tier-0 maintenance rate below 1/{MAX_R} (see sweep error analysis)")
        col = self._col_of[asset] = len(self._assets)
        self._assets.append(asset)
        self._mmr0.append(float(tiers[0].mmr))  # float-ok: pre-filter
        self._lb1.append(float(tiers[1].lower_bound) if len(tiers) > 1 else np.inf)  # float-ok: pre-filter
        self._kmmr.append([K * float(t.mmr) for t in tiers])  # float-ok: pre-filter
        self._kded.append([K * float(table.maintenance_amount(i)) for i in range(len(tiers))])  # float-ok: pre-filter
        self._tables = None
        return col

    def _numpy_tables(self) -> tuple[F64, F64, F64, F64]:
        if self._tables is None:
            width = max((len(r) for r in self._kmmr), default=1)
            # pad by repeating the last tier: a duplicate line never changes the max
            kmmr = np.array([r + r[-1:] * (width - len(r)) for r in self._kmmr]).reshape(-1, width)
            kded = np.array([r + r[-1:] * (width - len(r)) for r in self._kded]).reshape(-1, width)
            self._tables = (np.array(self._mmr0), np.array(self._lb1), kmmr, kded)
        return self._tables

    # -- the sweep ------------------------------------------------------------------------------
    def candidates(self, prices: Mapping[int, int]) -> list[str]:
        """Addresses, sorted, of accounts that may be liquidatable at ``prices`` (integer price
        units per asset; an asset missing from ``prices`` is priced at 0)."""
        n_rows = len(self._addresses)
        if not n_rows:
            return []
        mmr0, lb1, kmmr, kded = self._numpy_tables()
        px = np.array([float(prices.get(a, 0)) for a in self._assets])  # float-ok: pre-filter
        # tier-0 line folded into the price, per (asset, side): long (1 - K mmr0), short (1 + K mmr0)
        q = np.empty(2 * len(px))
        q[0::2] = px * (1.0 - K * mmr0)
        q[1::2] = px * (1.0 + K * mmr0)
        with np.errstate(divide="ignore", invalid="ignore"):
            thr = np.where(px > 0, lb1 / px, np.inf)  # second tier starts at this many lots
        tables = (px, q, thr, kmmr, kded)

        b = np.bincount(self._cross.row[: self._cross.n], weights=self._terms(self._cross, tables),
                        minlength=n_rows)
        n_cross = self._n_cross[:n_rows]
        s = self._raw[:n_rows] + b - K * n_cross
        flag = (s < 0.0) & (n_cross > 0)

        iso = self._iso
        if iso.n:
            w = self._terms(iso, tables)
            np.add(w, iso.iso[: iso.n], out=w)
            flag[iso.row[: iso.n][w < 0.0]] = True
        addresses = self._addresses
        return sorted([addresses[r] for r in np.flatnonzero(flag).tolist()])

    @staticmethod
    def _terms(pool: _Pool, tables: tuple[F64, F64, F64, F64, F64]) -> F64:
        """Per position ``n - K * L`` (a view of the pool's scratch buffer)."""
        px, q, thr, kmmr, kded = tables
        n = pool.n
        w = pool.w[:n]
        np.take(q, pool.col2[:n], out=w, mode="clip")
        np.multiply(w, pool.szi[:n], out=w)
        t = pool.thr[:n]
        np.take(thr, pool.col[:n], out=t, mode="clip")
        hi = np.flatnonzero(pool.abs_szi[:n] >= t)
        if hi.size:  # at or above the second tier: max over every tier's line
            col = pool.col[hi]
            p = px[col]
            a = pool.abs_szi[hi] * p
            lines = a[:, None] * kmmr[col] - kded[col]
            w[hi] = pool.szi[hi] * p - lines.max(axis=1)
        return w
