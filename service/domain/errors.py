"""Every error the service raises, in one tree, and what each provider error tells its caller.

    NotifierError
    ├── ConfigError                 bad settings; start-up stops with a message saying what to fix
    ├── CommandRefused              an operator's command refused (bad argument, not confirmed): nothing changed
    ├── EventRejected               an input event that cannot be processed (goes to the dead-letter topic)
    ├── MalformedReport             a provider's webhook body that is not what it sends: 400, nothing applied
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

Like aiokafka's errors, each class says how it may be handled through class attributes, so a
caller reads ``if err.retriable``, never ``isinstance``. For a provider error, the delivery engine
(``service.send.provider_slot``) decides from these attributes alone. This is their table; each class
below sets its row (``tests/unit/domain/test_errors.py`` holds every class to it):

=====================  =========  =========  ===========  ===============  =============  =============  =========
error                  retriable  ambiguous  pause_s      breaker_failure  provider_side  next_provider  opted_out
=====================  =========  =========  ===========  ===============  =============  =============  =========
ProviderError          no         no         -            yes              yes            yes            no
ProviderUnavailable    yes        yes        -            yes              yes            yes            no
RateLimited            yes        no         Retry-After  no               yes            yes            no
InvalidRecipient       no         no         -            no               no             no             no
RecipientOptedOut      no         no         -            no               no             no             yes
ContentRejected        no         no         -            no               no             yes            no
ProviderRejected       no         no         -            yes              yes            yes            no
=====================  =========  =========  ===========  ===============  =============  =============  =========

- ``retriable``: try the same provider again (within the message's attempts and deadline);
- ``ambiguous``: the provider may have taken the message: ask it (``find_sent``) before a retry;
- ``pause_s``: pause this provider for that long (``Retry-After``, 1 s when not given), then retry
  at once; otherwise a retry waits a jittered backoff;
- ``breaker_failure``: counts against the provider's health (circuit breaker); otherwise the
  provider answered, which counts as a success (an invalid number says nothing about Twilio);
- ``provider_side``: when it ends a step, the provider, not the message, stood in the way: if
  nothing is sent, the notification is held (tried later), not failed;
- ``next_provider``: when not retried, the next SMS provider may carry it; otherwise no more SMS
  (skip to email);
- ``opted_out``: stop: nothing is sent anywhere, the outcome says the recipient opted out.

``permanent`` (the opposite of ``retriable`` for the classes a provider client raises) is kept
for callers outside the engine.

Messages never contain a phone number, email address or name: adapters pass only codes,
provider names and our own ids into them.
"""

from __future__ import annotations

#: How long a provider is paused after a 429 that gave no ``Retry-After``.
DEFAULT_PAUSE_S = 1.0


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


class MalformedReport(NotifierError):
    """A provider's webhook body is not what that provider sends (not UTF-8 JSON, an entry that is
    not an object, a field of the wrong type): the request is answered 400 and none of its
    entries is applied. The message names the field, never its value."""

    permanent = True


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
    when it gave one (``21211``) or an HTTP status otherwise. The class attributes say what the
    error means for delivery (the table above); this base class is an error we cannot place:
    it counts against the provider, and the next provider is tried.
    """

    ambiguous: bool = False
    breaker_failure: bool = True
    provider_side: bool = True
    next_provider: bool = True
    opted_out: bool = False
    pause_s: float | None = None

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
    breaker_failure = False  # throttling is not ill health

    def __init__(self, provider: str, code: str, retry_after: float | None = None) -> None:
        super().__init__(provider, code, f"retry after {retry_after}s" if retry_after else "")
        self.retry_after = retry_after
        self.pause_s = retry_after or DEFAULT_PAUSE_S


class InvalidRecipient(ProviderError):
    """The provider says the number/address is invalid or not reachable by this channel."""

    permanent = True
    breaker_failure = False
    provider_side = False
    next_provider = False


class RecipientOptedOut(ProviderError):
    """The recipient has opted out at the provider (e.g. replied STOP)."""

    permanent = True
    breaker_failure = False
    provider_side = False
    next_provider = False
    opted_out = True


class ContentRejected(ProviderError):
    """The provider or carrier filtered the body or sender; another provider may accept it."""

    permanent = True
    breaker_failure = False
    provider_side = False


class ProviderRejected(ProviderError):
    """The provider refused the request for a reason on our side (auth, account, bad request)."""

    permanent = True
