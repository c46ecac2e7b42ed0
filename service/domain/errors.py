"""Every error the service raises, in one tree.

    NotifierError
    ├── ConfigError                 bad settings; start-up stops with a message saying what to fix
    ├── CommandRefused              an operator's command refused (bad argument, not confirmed): nothing changed
    ├── EventRejected               an input event that cannot be processed (goes to the dead-letter topic)
    ├── RenderError                 a template could not be rendered (missing variable, unknown template)
    │   └── SmsTooLong              over the SMS segment cap even shortened: no SMS (email, else failed)
    ├── StoreUnavailable            PostgreSQL could not be reached or the statement failed
    ├── ConsumerError               the Kafka consumer could not do what was asked
    │   ├── CommitRefused           a commit refused after a rebalance took the partitions: the new owner re-reads
    │   └── ConsumerUnavailable     broker trouble (a commit not taken): retriable, the next commit covers it
    └── ProviderError               a provider did not accept a message
        ├── ProviderUnavailable     network error, timeout or 5xx: retriable, the send may have happened
        ├── RateLimited             429: retriable after ``retry_after`` seconds; never processed
        ├── InvalidRecipient        the number or address is invalid: permanent, no retry, no SMS failover
        ├── RecipientOptedOut       the recipient unsubscribed at the provider: permanent
        ├── ContentRejected         body or sender filtered: permanent for this provider, another may accept
        └── ProviderRejected        auth, account or request problem on our side: permanent for this provider

Like aiokafka's errors, each class says how it may be handled through class attributes
(``retriable``, ``permanent``), so a failover decision reads ``if err.retriable``.

Messages never contain a phone number, email address or name: adapters pass only codes,
provider names and our own ids into them.
"""

from __future__ import annotations


class NotifierError(Exception):
    """Base of every error this service raises on purpose."""

    retriable: bool = False
    permanent: bool = False


class ConfigError(NotifierError):
    """Settings are missing or invalid."""


class CommandRefused(NotifierError):
    """An operator's command was refused before it changed anything: the message says why and what to do."""


class EventRejected(NotifierError):
    """An input event is malformed or cannot be processed; ``reason`` is a short machine code."""

    permanent = True

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RenderError(NotifierError):
    """A message could not be rendered from its template."""

    permanent = True


class SmsTooLong(RenderError):
    """Even the shortest variant of an SMS is over the segment cap (``NOTIFIER_SMS_MAX_SEGMENTS``)."""


class StoreUnavailable(NotifierError):
    """The database could not be reached or rejected a statement."""

    retriable = True


class ConsumerError(NotifierError):
    """The Kafka consumer could not do what was asked (raised by ``service.kafka.consumer``)."""


class CommitRefused(ConsumerError):
    """The group no longer gives us these partitions (a rebalance): their new owner reads them
    again from the last commit, and the dedup makes that harmless."""


class ConsumerUnavailable(ConsumerError):
    """The broker could not take the request now (connection, coordinator, timeout)."""

    retriable = True


class ProviderError(NotifierError):
    """A provider did not accept a message.

    ``provider`` names the provider (``twilio``), ``code`` is the provider's own error code
    when it gave one (``21211``) or an HTTP status otherwise, ``ambiguous`` says whether the
    provider may have accepted the message in spite of the error.
    """

    ambiguous: bool = False

    def __init__(self, provider: str, code: str, message: str = "") -> None:
        super().__init__(f"{provider} error {code}" + (f": {message}" if message else ""))
        self.provider = provider
        self.code = code


class ProviderUnavailable(ProviderError):
    """Network failure, timeout or 5xx: the provider may or may not have taken the message."""

    retriable = True
    ambiguous = True


class RateLimited(ProviderError):
    """The provider throttled us (HTTP 429); the request was not processed."""

    retriable = True

    def __init__(self, provider: str, code: str, retry_after: float | None = None) -> None:
        super().__init__(provider, code, f"retry after {retry_after}s" if retry_after else "")
        self.retry_after = retry_after


class InvalidRecipient(ProviderError):
    """The provider says the number/address is invalid or not reachable by this channel."""

    permanent = True


class RecipientOptedOut(ProviderError):
    """The recipient has opted out at the provider (e.g. replied STOP)."""

    permanent = True


class ContentRejected(ProviderError):
    """The provider or carrier filtered the body or sender; another provider may accept it."""

    permanent = True


class ProviderRejected(ProviderError):
    """The provider refused the request for a reason on our side (auth, account, bad request)."""

    permanent = True
