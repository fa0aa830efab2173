"""Who may act for an account, and the dead man's switch: the account-level settings Hyperliquid
keeps in its L1 state (so they are commands and events here, durable and replayable).

* API wallets (``approveAgent``): an agent signs L1 actions for its master, and only for it.  As
  on Hyperliquid a master has one unnamed agent and up to ``MAX_NAMED_AGENTS`` named ones (plus
  ``NAMED_AGENTS_PER_SUB`` per sub-account); approving a new unnamed agent, or a named one under a
  name in use, replaces the old one; the zero address under a name removes it; ``valid_until`` (ms,
  from the name's `` valid_until <ms>`` suffix, at most 180 days ahead) expires it.  An address that
  is or ever was an agent (of anyone: what it signed could be replayed) or that is itself an account
  cannot be approved, except to renew a master's own agent under its own name
  (:func:`agent_approval_error`, shared with the API's pre-check).
* Builder-fee approvals (``approveBuilderFee``): the most a builder may charge, in tenths of a bp;
  at most ``MAX_BUILDER_APPROVALS`` builders per user.  Only the order's own user approves a
  builder; the builder consents to nothing, and a fee only ever moves from the user to the builder.
* ``scheduleCancel``: at the scheduled time every open order is cancelled with status
  ``scheduledCancel``; at most ``MAX_SCHEDULED_CANCELS_PER_DAY`` firings per UTC day, as on the venue.
  The venue's volume gate ($1M traded) is not applied: a local exchange is for trying bots.
"""

from __future__ import annotations

from typing import Any, ClassVar

from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.ports import OrderDesk
from perpbox.exchange.results import OK, Error, Handler, Ok
from perpbox.exchange.sink import Applier, EventSink
from perpbox.ledger.ledger import Ledger
from perpbox.risk.margin import MarginView

ZERO_ADDRESS = "0x" + "0" * 40
MAX_NAMED_AGENTS = 3
MAX_SCHEDULED_CANCELS_PER_DAY = 10
MAX_PERP_BUILDER_FEE = 100  # tenths of a bp: 0.1% on perps (approvals may go to 1%, the spot limit)
MIN_BUILDER_VALUE = 100_000_000  # a builder needs 100 USDC in its perp account
BUILDER_TOO_POOR = "Builder has insufficient balance to be approved."  # third-party notes quote this answer
MIN_SCHEDULE_DELAY_MS = 5_000
DAY_MS = 86_400_000
NAMED_AGENTS_PER_SUB = 2  # reference §3.8: "+2 named per sub-account"
MAX_AGENT_NAME = 16  # characters; third-party SDKs (nktkas/hyperliquid, df-hyperliquid-core) check 1..16
MAX_AGENT_VALIDITY_MS = 180 * 86_400_000  # reference §3.8: valid_until at most 180 days ahead
MAX_BUILDER_APPROVALS = 10  # reference §3.3: "<=10 active approvals per user"
TOO_MANY_AGENTS = "Too many extra agents for cumulative volume traded. Current limit is {limit}"  # reference §3.8
AGENT_EXPIRED = "Agent valid_until already expired."  # reference §3.8
AGENT_ALREADY_USED = "Extra agent already used."  # reference §3.8 (observed)
AGENT_IS_USER = "Agent address is already a user."  # perpbox wording: the venue's string is not recorded
AGENT_NAME_INVALID = "Invalid agent name."  # perpbox wording
AGENT_TOO_LATE = "Agent valid_until is more than 180 days away."  # perpbox wording
TOO_MANY_BUILDERS = "Too many builder fee approvals. Limit is 10"  # perpbox wording
# an older live test in nktkas/hyperliquid (tests/api/exchange) expects exactly this text
SCHEDULE_TOO_EARLY = "Scheduled cancel time too early, must be at least 5 seconds from now."
TOO_MANY_SCHEDULED = "Too many scheduled cancels triggered for the day. Limit is 10"  # reference §3.6


class AccountAccess:
    """Owns API wallets, builder-fee approvals and dead man's switches (commands and appliers);
    reads accounts from the ledger and a builder's value from the margin view."""

    def __init__(self, sink: EventSink, ledger: Ledger, margin: MarginView) -> None:
        self.sink = sink
        self.ledger = ledger
        self.margin = margin
        self.agents: dict[str, tuple[str, str, int]] = {}  # agent -> (master, name, valid_until)
        self.agents_by_master: dict[str, dict[str, str]] = {}  # master -> name -> agent (the same entries)
        self.used_agents: set[str] = set()  # every address ever approved as an agent
        self.builder_fees: dict[tuple[str, str], int] = {}
        self.cancel_schedule: dict[str, int] = {}
        self.scheduled_fired: dict[str, tuple[int, int]] = {}  # user -> (UTC day, firings that day)

    STATE: ClassVar[tuple[str, ...]] = (
        "agents", "agents_by_master", "used_agents", "builder_fees", "cancel_schedule", "scheduled_fired")

    def handlers(self) -> dict[type, Handler]:
        return {C.ApproveAgent: self._cmd_approve_agent, C.ApproveBuilderFee: self._cmd_approve_builder_fee,
                C.ScheduleCancel: self._cmd_schedule_cancel, C.Noop: self._cmd_noop}

    def appliers(self) -> dict[type, Applier]:
        return {V.AgentApproved: self._on_agent_approved, V.BuilderFeeApproved: self._on_builder_fee_approved,
                V.CancelScheduled: self._on_cancel_scheduled}

    # -- queries ------------------------------------------------------------------------------------
    def agent_master(self, agent: str, ts: int) -> str | None:
        """The account an API wallet acts for, or None (unknown or expired)."""
        entry = self.agents.get(agent)
        if entry is None or (entry[2] and entry[2] < ts):
            return None
        return entry[0]

    def agents_of(self, master: str) -> list[tuple[str, str, int]]:
        """(agent, name, valid_until) of every API wallet of ``master``, by agent address."""
        names = self.agents_by_master.get(master, {})
        return sorted((a, n, self.agents[a][2]) for n, a in names.items())

    def max_builder_fee(self, user: str, builder: str) -> int:
        return self.builder_fees.get((user, builder), 0)

    def agent_approval_error(self, user: str, agent: str, name: str, valid_until: int, ts: int) -> str | None:
        """Why ``user`` may not approve ``agent`` under ``name`` now, or None.  The engine's rule;
        the API asks it first so that a refusal is answered without touching the log."""
        if user not in self.ledger.accounts:
            return E.MUST_DEPOSIT.format(user=user)
        if len(name) > MAX_AGENT_NAME or "valid_until" in name or not name.isprintable():
            return AGENT_NAME_INVALID
        if valid_until < 0 or (valid_until and valid_until <= ts):
            return AGENT_EXPIRED
        if valid_until > ts + MAX_AGENT_VALIDITY_MS:
            return AGENT_TOO_LATE
        if agent == ZERO_ADDRESS:
            return None
        renewing = self.agents.get(agent, ("", "", 0))[:2] == (user, name)
        if not renewing:
            if agent in self.used_agents:
                return AGENT_ALREADY_USED
            if agent in self.ledger.accounts:
                return AGENT_IS_USER
        names = self.agents_by_master.get(user, {})
        limit = MAX_NAMED_AGENTS + NAMED_AGENTS_PER_SUB * len(self.ledger.accounts[user].subs)
        if name and name not in names and sum(1 for n in names if n) >= limit:
            return TOO_MANY_AGENTS.format(limit=limit)
        return None

    # -- commands -----------------------------------------------------------------------------------
    def _cmd_approve_agent(self, cmd: C.ApproveAgent) -> Ok | Error:
        bad = self.agent_approval_error(cmd.user, cmd.agent, cmd.name, cmd.valid_until, cmd.ts)
        if bad is not None:
            return Error(bad)
        self.sink.emit(V.AgentApproved(ts=cmd.ts, user=cmd.user, agent=cmd.agent, name=cmd.name,
                                   valid_until=cmd.valid_until))
        return OK

    def _cmd_approve_builder_fee(self, cmd: C.ApproveBuilderFee) -> Ok | Error:
        if cmd.max_fee < 0 or cmd.max_fee > 1000:  # 0.1% = 100 tenths of a bp on perps; 1% spot
            return Error(E.INVALID_BUILDER_FEE)
        builder = self.ledger.accounts.get(cmd.builder)
        if cmd.max_fee and (builder is None or self.margin.cross_value(builder) < MIN_BUILDER_VALUE):
            return Error(BUILDER_TOO_POOR)
        if cmd.max_fee and (cmd.user, cmd.builder) not in self.builder_fees:
            active = sum(1 for (u, _), fee in self.builder_fees.items() if u == cmd.user and fee)
            if active >= MAX_BUILDER_APPROVALS:
                return Error(TOO_MANY_BUILDERS)
        self.sink.emit(V.BuilderFeeApproved(ts=cmd.ts, user=cmd.user, builder=cmd.builder,
                                        max_fee=cmd.max_fee))
        return OK

    def _cmd_noop(self, cmd: C.Noop) -> Ok | Error:
        return OK

    def _cmd_schedule_cancel(self, cmd: C.ScheduleCancel) -> Ok | Error:
        if cmd.time is not None:
            if cmd.time < cmd.ts + MIN_SCHEDULE_DELAY_MS:
                return Error(SCHEDULE_TOO_EARLY)
            day, fired = self.scheduled_fired.get(cmd.user, (0, 0))
            if day == cmd.ts // DAY_MS and fired >= MAX_SCHEDULED_CANCELS_PER_DAY:
                return Error(TOO_MANY_SCHEDULED)
        self.sink.emit(V.CancelScheduled(ts=cmd.ts, user=cmd.user, time=cmd.time))
        return OK

    def fire_scheduled_cancels(self, ts: int, desk: OrderDesk) -> None:
        """Part of every Tick, before pricing: cancel the orders of every switch that is due."""
        for user in sorted(u for u, t in self.cancel_schedule.items() if t <= ts):
            desk.close_orders_of(ts, user, "scheduledCancel")
            self.sink.emit(V.CancelScheduled(ts=ts, user=user, time=None, fired=True))

    # -- appliers -----------------------------------------------------------------------------------
    def _on_agent_approved(self, ev: V.AgentApproved) -> None:
        names = self.agents_by_master.setdefault(ev.user, {})
        old = names.pop(ev.name, None)
        if old is not None:
            del self.agents[old]
        if ev.agent != ZERO_ADDRESS:
            previous = self.agents.pop(ev.agent, None)
            if previous is not None:  # an agent renewed or moved: drop its old name's entry
                self.agents_by_master[previous[0]].pop(previous[1], None)
            self.agents[ev.agent] = (ev.user, ev.name, ev.valid_until)
            names[ev.name] = ev.agent
            self.used_agents.add(ev.agent)
        if not names:
            del self.agents_by_master[ev.user]

    def _on_builder_fee_approved(self, ev: V.BuilderFeeApproved) -> None:
        self.builder_fees[(ev.user, ev.builder)] = ev.max_fee

    def _on_cancel_scheduled(self, ev: V.CancelScheduled) -> None:
        if ev.fired:
            day, fired = self.scheduled_fired.get(ev.user, (0, 0))
            today = ev.ts // DAY_MS
            self.scheduled_fired[ev.user] = (today, fired + 1 if day == today else 1)
        if ev.time is None:
            self.cancel_schedule.pop(ev.user, None)
        else:
            self.cancel_schedule[ev.user] = ev.time

    def state(self) -> list[Any]:
        """This component's part of the state hash."""
        return [sorted(self.agents.items()), sorted(self.used_agents), sorted(self.builder_fees.items()),
                sorted(self.cancel_schedule.items()),
                sorted(self.scheduled_fired.items())]
