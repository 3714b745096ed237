"""A night's news for the team: the digest (what is new against the baseline, known or
not) and its delivery by e-mail and webhook. See docs/nights.md."""

from harness.notify.digest import Digest, DigestInput, build_digest, from_store
from harness.notify.send import NotifyConfig, NotifyError, Sent, load_notify_config, notify

__all__ = [
    "Digest",
    "DigestInput",
    "NotifyConfig",
    "NotifyError",
    "Sent",
    "build_digest",
    "from_store",
    "load_notify_config",
    "notify",
]
