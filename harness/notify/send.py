"""Sending a night's digest: e-mail over SMTP (smtplib) and a generic JSON webhook
(urllib), configured in the controller's notification file (``--notify FILE``)::

    base_url: https://lab.example.org/harness     # where reports/<run-id>/ are served
    send: changes          # changes (default): only when there is news; always: every night
    email:
      to: [kernel-team@example.org]
      from: harness@lab.example.org
      smtp: {host: mail.example.org, port: 587, starttls: true,
             user: harness, password_file: /etc/harness/smtp-password}
    webhook:
      url: https://chat.example.org/hooks/T0KEN
      headers: {X-Team: kernel}
      timeout: 10

The webhook receives the digest as JSON (``Digest.as_dict()`` plus ``"text"``). A
failure to send is reported (exit status 1 from ``harness digest``), never hidden, and
never changes what the night's numbers say.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import HarnessError
from harness.notify.digest import Digest
from harness.yamlsrc import load_yaml, validate


class NotifyError(HarnessError):
    """A notification could not be delivered."""


class _Smtp(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    user: str | None = None
    password_file: Path | None = None
    timeout: float = Field(default=30.0, gt=0)


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    to: tuple[str, ...]
    from_: str = Field(alias="from")
    smtp: _Smtp = _Smtp()

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("give at least one address")
        for a in v:
            if "@" not in a or any(c.isspace() for c in a):
                raise ValueError(f"{a!r} is not an e-mail address")
        return v


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    base_url: str | None = None
    send: Literal["changes", "always"] = "changes"
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None


def load_notify_config(path: str | Path) -> NotifyConfig:
    file = Path(path)
    doc = load_yaml(file)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a notification file is a mapping (email:, webhook:, base_url:)")
    cfg: NotifyConfig = validate(NotifyConfig, doc)
    if cfg.email is None and cfg.webhook is None:
        raise doc.error((), "nothing to notify: give 'email', 'webhook' or both")
    pw = cfg.email.smtp.password_file if cfg.email is not None else None
    if pw is not None and not (file.parent / pw).is_file():
        raise doc.error(("email", "smtp", "password_file"), f"no password file at {pw}")
    return cfg


@dataclass(frozen=True)
class Sent:
    channel: str  # "email" | "webhook"
    target: str
    ok: bool
    detail: str = ""


def email_message(digest: Digest, cfg: EmailConfig) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = digest.subject()
    msg["From"] = cfg.from_
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=cfg.from_.rsplit("@", 1)[-1])
    msg["X-Harness-Run"] = digest.run_id
    msg["X-Harness-Alarm"] = "yes" if digest.alarm else "no"
    msg.set_content(digest.text())
    msg.add_attachment(json.dumps(digest.as_dict(), indent=1).encode(), maintype="application",
                       subtype="json", filename="digest.json")
    return msg


def send_email(digest: Digest, cfg: EmailConfig, base_dir: Path = Path(".")) -> Sent:
    s = cfg.smtp
    target = f"smtp://{s.host}:{s.port} -> {', '.join(cfg.to)}"
    try:
        smtp: smtplib.SMTP
        if s.ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        with smtp:
            if s.starttls and not s.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if s.user:
                pw = (base_dir / s.password_file).read_text().strip() if s.password_file else ""
                smtp.login(s.user, pw)
            refused = smtp.send_message(email_message(digest, cfg))
    except (OSError, smtplib.SMTPException) as e:
        return Sent("email", target, False, f"{type(e).__name__}: {e}")
    if refused:
        return Sent("email", target, False, f"refused: {', '.join(refused)}")
    return Sent("email", target, True)


def send_webhook(digest: Digest, cfg: WebhookConfig) -> Sent:
    body = json.dumps({**digest.as_dict(), "text": digest.text()}).encode()
    req = urllib.request.Request(cfg.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "vm-boot-harness", **cfg.headers})
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:  # http(s): checked
            status = resp.status
    except urllib.error.HTTPError as e:
        return Sent("webhook", cfg.url, False, f"HTTP {e.code} {e.reason}")
    except (OSError, urllib.error.URLError) as e:
        return Sent("webhook", cfg.url, False, f"{type(e).__name__}: {e}")
    return Sent("webhook", cfg.url, 200 <= status < 300, f"HTTP {status}")


def notify(digest: Digest, cfg: NotifyConfig, base_dir: Path = Path(".")) -> list[Sent]:
    """Send the digest on every configured channel (nothing when there is no news and
    ``send: changes``)."""
    if cfg.send == "changes" and not digest.worth_sending:
        return []
    out = []
    if cfg.email is not None:
        out.append(send_email(digest, cfg.email, base_dir))
    if cfg.webhook is not None:
        out.append(send_webhook(digest, cfg.webhook))
    return out
