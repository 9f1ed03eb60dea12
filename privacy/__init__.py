"""m3fed privacy: site policy, Opacus-based accounting, the hash-chained budget ledger and statements.

Importing this package does not import torch; the accountants load Opacus on first use.
"""
from privacy.accounting import (
    AccountingError,
    PrivacyBudgetExhausted,
    accountant_version,
    affordable_steps,
    calibrate_noise,
    epsilon,
    would_exceed,
)
from privacy.ledger import Ledger, LedgerError, dataset_fingerprint, verify_ledger
from privacy.policy import PolicyError, PrivacyPolicy, check_delta, load_policy
from privacy.statement import privacy_statement, render_markdown

__all__ = [
    "AccountingError", "Ledger", "LedgerError", "PolicyError", "PrivacyBudgetExhausted", "PrivacyPolicy",
    "accountant_version", "affordable_steps", "calibrate_noise", "check_delta", "dataset_fingerprint", "epsilon",
    "load_policy", "privacy_statement", "render_markdown", "verify_ledger", "would_exceed",
]
