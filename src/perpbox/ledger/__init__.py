"""Accounts, sub-accounts, positions and balances: the one place money moves."""

from perpbox.ledger.ledger import FEE_ACCOUNT, Account, Ledger, LedgerError, Position

__all__ = ["FEE_ACCOUNT", "Account", "Ledger", "LedgerError", "Position"]
