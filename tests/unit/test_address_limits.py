"""Hyperliquid's address-based request limit: 10,000 + 1 per USDC traded, batches count per item,
one request per 10 s over the cap, extra headroom for cancels."""

from __future__ import annotations

from perpbox.api.ratelimit import AddressLimiter, RateLimiter

A = "0x" + "a" * 40


def _orders(n: int) -> dict:
    return {"type": "order", "orders": [{}] * n, "grouping": "na"}


def test_the_cap_grows_with_volume_and_batches_count_per_order() -> None:
    volume = {A: 0}
    lim = AddressLimiter(lambda u: volume.get(u, 0), buffer=100)
    assert lim.check(A, _orders(60), now=0.0) is None
    assert lim.check(A, _orders(40), now=0.0) is None
    assert lim.used[A] == 100
    err = lim.check(A, _orders(1), now=0.0)  # the first request over the cap passes (1 per 10 s) ...
    assert err is None
    err = lim.check(A, _orders(1), now=5.0)  # ... the next within 10 s does not
    assert err == ("Too many cumulative requests sent (102 > 100) for cumulative volume traded $0.00. "
                   "Place taker orders to free up 1 request per USDC traded.")
    assert lim.check(A, _orders(1), now=11.0) is None
    volume[A] = 437_925_000  # $437.925 traded: 437 more requests
    assert lim.cap(A) == 537
    assert lim.check(A, _orders(400), now=12.0) is None
    assert lim.check(A, _orders(40), now=12.0) is not None  # 542 > 537, 1 s after the last slot
    assert lim.check(A, _orders(40), now=21.5) is None  # the next 10-second slot
    assert "(543 > 537) for cumulative volume traded $437.92." in (lim.check(A, _orders(1), now=23.0) or "")


def test_cancels_get_headroom_up_to_twice_the_cap() -> None:
    lim = AddressLimiter(lambda u: 0, buffer=100)
    assert lim.check(A, _orders(100), now=0.0) is None
    cancels = {"type": "cancel", "cancels": [{"a": 0, "o": 1}] * 50}
    assert lim.check(A, cancels, now=0.0) is None  # 150 <= min(100 + 100000, 200)
    assert lim.check(A, cancels, now=0.0) is None  # 200
    assert lim.check(A, cancels, now=0.0) is None  # over: the 10-second slot
    assert lim.check(A, cancels, now=1.0) is not None


def test_exempt_addresses_and_ip_weights() -> None:
    lim = AddressLimiter(lambda u: 0, buffer=1, exempt={A})
    for _ in range(5):
        assert lim.check(A, _orders(10)) is None
    assert RateLimiter.action_weight({"action": _orders(79)}) == 2
    assert RateLimiter.info_weight({"type": "l2Book"}) == 2 and RateLimiter.info_weight({"type": "userRole"}) == 60
    ip = RateLimiter(capacity=40)
    assert ip.allow("1.2.3.4", 20, now=0.0) and ip.allow("1.2.3.4", 20, now=0.0)
    assert not ip.allow("1.2.3.4", 20, now=0.0)
    assert ip.allow("1.2.3.4", 20, now=30.0)  # refilled at 40 per minute
