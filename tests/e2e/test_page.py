"""The live page (``GET /``) in a real browser against a running server with simulated traders.

One test, in steps, on one page: a server and a browser per test would multiply under ``pytest -n``.
Every wait is one of Playwright's polling waits (a condition evaluated in the page until it holds, or a
generous timeout): the simulated market moves on its own schedule, so nothing here depends on timing.
"""

from __future__ import annotations

from typing import Any

WAIT_MS = 30_000

BOOK_TEXT = ("() => document.querySelector('#book-bids').innerText + '|'"
             " + document.querySelector('#book-asks').innerText")


def wait_book(page: Any, coin: str) -> None:
    """Until the book shows ``coin`` with rows on both sides."""
    page.wait_for_function(
        """coin => document.querySelector('#book').dataset.coin === coin
                   && document.querySelectorAll('#book-bids tr').length > 0
                   && document.querySelectorAll('#book-asks tr').length > 0""",
        arg=coin, timeout=WAIT_MS)


def wait_book_changes(page: Any) -> None:
    before = page.evaluate(BOOK_TEXT)
    page.wait_for_function(f"before => ({BOOK_TEXT})() !== before", arg=before, timeout=WAIT_MS)


def best_px(page: Any, side: str) -> float:
    return float(page.locator(f"#book-{side} tr").first.locator("td.px").inner_text())


def mark_of(page: Any, coin: str) -> float:
    return float(page.locator(f'#markets tbody tr[data-coin="{coin}"] td.mark').inner_text())


def check_markets_table(page: Any) -> None:
    """Both dexes' markets are listed with numeric marks and oracles."""
    for coin in ("BTC", "ETH", "xyz:SILVER"):
        row = page.locator(f'#markets tbody tr[data-coin="{coin}"]')
        row.wait_for(timeout=WAIT_MS)
        mark, oracle = mark_of(page, coin), float(row.locator("td.oracle").inner_text())
        assert mark > 0 and oracle > 0, (coin, mark, oracle)
        assert abs(mark / oracle - 1) < 0.05, (coin, mark, oracle)
    assert page.locator("#markets tbody tr.selected").get_attribute("data-coin") == "BTC"


def check_btc_book_and_trades(page: Any) -> None:
    """BTC (selected by default): a two-sided book of at most 15 levels a side, and both the book
    and the trades list update over the WebSocket."""
    wait_book(page, "BTC")
    bid, ask = best_px(page, "bids"), best_px(page, "asks")
    assert 0 < bid < ask, (bid, ask)
    assert 0.8 * mark_of(page, "BTC") < bid < 1.25 * mark_of(page, "BTC")
    assert page.locator("#book-bids tr").count() <= 15 and page.locator("#book-asks tr").count() <= 15
    wait_book_changes(page)

    page.locator("#trades li[data-tid]").first.wait_for(timeout=WAIT_MS)
    newest = page.locator("#trades li[data-tid]").first.get_attribute("data-tid")
    page.wait_for_function(
        "tid => document.querySelector('#trades li[data-tid]').dataset.tid !== tid", arg=newest, timeout=WAIT_MS)
    px = float(page.locator("#trades li[data-tid]").first.locator(".px").inner_text())
    assert 0.8 * bid < px < 1.25 * ask, (px, bid, ask)


def check_price_chart(page: Any) -> None:
    """The plotly chart has rendered (an svg) and draws candles."""
    page.locator("#price-chart svg.main-svg").first.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        "() => { const d = document.getElementById('price-chart').data;"
        " return d && d[0].type === 'candlestick' && d[0].x.length > 0; }", timeout=WAIT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('#price-chart svg g.trace.boxes path')]"
                           ".some(p => (p.getAttribute('d') || '').length > 0)", timeout=WAIT_MS)


def check_switch_market(page: Any) -> None:
    """Clicking xyz:SILVER switches the header, book, trades and chart to it."""
    btc_bid = best_px(page, "bids")
    page.locator('#markets tbody tr[data-coin="xyz:SILVER"]').click()
    wait_book(page, "xyz:SILVER")
    silver = mark_of(page, "xyz:SILVER")
    bid, ask = best_px(page, "bids"), best_px(page, "asks")
    assert 0 < bid < ask and bid != btc_bid
    assert 0.8 * silver < bid < 1.25 * silver, (bid, silver)
    assert page.locator("#selected-coin").inner_text() == "xyz:SILVER"
    assert page.locator("#markets tbody tr.selected").get_attribute("data-coin") == "xyz:SILVER"
    assert page.locator("#trades").get_attribute("data-coin") == "xyz:SILVER"
    # Only SILVER's trades are listed (the BTC subscriptions were dropped) and its book keeps moving.
    page.locator("#trades li[data-tid]").first.wait_for(timeout=WAIT_MS)
    for text in page.locator("#trades li[data-tid] .px").all_inner_texts():
        assert 0.8 * silver < float(text) < 1.25 * silver, (text, silver)
    wait_book_changes(page)
    assert page.locator("#book").get_attribute("data-coin") == "xyz:SILVER"
    page.wait_for_function("() => document.getElementById('price-chart').data[0].name === 'xyz:SILVER'",
                           timeout=WAIT_MS)


def check_liquidations_panel(page: Any) -> None:
    """Either "none yet" or a table of liquidations; never blank."""
    page.wait_for_function("() => document.querySelector('#liquidations').innerText.trim().length > 0",
                           timeout=WAIT_MS)
    text = page.locator("#liquidations").inner_text()
    assert "none yet" in text or page.locator("#liquidations tbody tr").count() > 0, text


def check_ws_reconnect(page: Any) -> None:
    """The socket drops: the page reconnects, resubscribes, and the book moves again."""
    page.locator('#ws-status[data-state="open"]').wait_for(timeout=WAIT_MS)
    coin = page.locator("#book").get_attribute("data-coin")
    connects = page.locator("#ws-status").get_attribute("data-connects")
    page.evaluate("() => state.ws.close()")
    page.wait_for_function(
        """n => { const s = document.querySelector('#ws-status');
                  return s.dataset.state === 'open' && s.dataset.connects !== n; }""", arg=connects, timeout=WAIT_MS)
    wait_book(page, coin)
    wait_book_changes(page)


def test_live_page(page: Any) -> None:
    check_markets_table(page)
    check_btc_book_and_trades(page)
    check_price_chart(page)
    check_switch_market(page)
    check_liquidations_panel(page)
    check_ws_reconnect(page)
    assert page.errors == [], page.errors
