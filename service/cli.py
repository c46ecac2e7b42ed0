"""The ``notifier`` command. The only module that configures logging and turns errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aiokafka.errors import KafkaConnectionError

from service.confirm import add_guard_flags, confirm
from service.domain.errors import (
    CommandRefused,
    ConfigError,
    ConsumerUnavailable,
    NotifierError,
    StoreUnavailable,
)
from service.domain.milestones import Milestone
from service.numbers_cli import add_numbers_command, run_numbers_command
from service.pilot_cli import add_pilot_command, run_pilot_command
from service.resources import sample_events, schemas_dir, version
from service.settings import Settings, load_settings

EXIT_CONFIG = 2
EXIT_FAILURE = 1
# The shortest idle time `purge --days` accepts: an SMS's delivery report can come days after it was
# sent, and an undelivered one triggers the email fallback, which needs the sealed event.
PURGE_MIN_DAYS = 7


def _purge_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text[:20]!r}") from None
    if days < PURGE_MIN_DAYS:
        raise argparse.ArgumentTypeError(
            f"{days} refused: must be at least {PURGE_MIN_DAYS} days, so the data of orders in flight is "
            "kept (0 or a negative number would destroy everything); leave --days out for "
            "NOTIFIER_RETENTION_DAYS"
        )
    return days


#: ``optout --by``: who recorded it, kept in the consent history, the decisions' consent snapshot and
#: the audit log (as its actor): bounded like a staff name.
OPERATOR_MAX = 64


def _operator(text: str) -> str:
    if not (0 < len(text) <= OPERATOR_MAX and text == text.strip() and text.isprintable()):
        raise argparse.ArgumentTypeError(
            f"1 to {OPERATOR_MAX} printable characters with no spaces at its ends (a name or a ticket)"
        )
    return text


def _personal_option(group: argparse._MutuallyExclusiveGroup, flag: str, what: str) -> None:
    group.add_argument(
        flag,
        nargs="?",
        const="-",
        metavar="-",
        help=f"the {what}, typed at a prompt (not echoed) or read from standard input; never given "
        "on the command line (process list, shell history)",
    )


def _add_privacy_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pg = sub.add_parser(
        "purge", help="destroy personal data past the retention period (the service also does it)"
    )
    pg.add_argument(
        "--days",
        type=_purge_days,
        default=None,
        help=f"idle days (at least {PURGE_MIN_DAYS}); default: NOTIFIER_RETENTION_DAYS",
    )
    add_guard_flags(pg, "destroy")

    er = sub.add_parser("erase", help="erase one customer's personal data on request")
    who = er.add_mutually_exclusive_group(required=True)
    who.add_argument("--order", help="order number (or waybill, as in the support look-up)")
    who.add_argument("--waybill", help="waybill number (the carrier's tracking number)")
    _personal_option(who, "--phone", "phone number")
    _personal_option(who, "--email", "email address")
    add_guard_flags(er, "erase")

    oo = sub.add_parser(
        "optout", help="record an opt-out (or, with --opt-in, withdraw one) for a phone or email"
    )
    target = oo.add_mutually_exclusive_group(required=True)
    _personal_option(target, "--phone", "phone number")
    _personal_option(target, "--email", "email address")
    oo.add_argument(
        "--opt-in", action="store_true", help="the customer explicitly asked to receive messages again"
    )
    oo.add_argument(
        "--by",
        required=True,
        type=_operator,
        help="who records it (operator name or ticket, at most 64 characters), kept in the history"
        " and the audit log",
    )

    st = sub.add_parser("staff", help="customer-service access tokens")
    st_sub = st.add_subparsers(dest="staff_command", required=True, metavar="ACTION")
    sa = st_sub.add_parser("add", help="create a token (printed once; only its hash is stored)")
    sa.add_argument("--name", required=True, help="the staff member's name, as shown in the audit log")
    sa.add_argument(
        "--role", required=True, choices=["cs_agent", "admin"], help="cs_agent: look-ups; admin: also audits"
    )
    sr = st_sub.add_parser("revoke", help="revoke every token of a staff member")
    sr.add_argument("--name", required=True, help="the staff member whose tokens end")
    add_guard_flags(sr, "revoke")

    ky = sub.add_parser("keys", help="encryption keys for personal data at rest")
    ky_sub = ky.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kg = ky_sub.add_parser("generate", help="print a new key (needs no settings); store it as a secret")
    kg.add_argument(
        "--kind",
        choices=["pii", "blind-index", "env"],
        default="pii",
        help="pii: a keyring entry for NOTIFIER_PII_KEYS; blind-index: a 32-byte base64 key "
        "(NOTIFIER_BLIND_INDEX_KEY, NOTIFIER_LINK_SIGNING_KEY); env: all three, as an env file for local use",
    )
    kg.add_argument("--id", default="k1", help="key id to put before a pii key (default: k1)")
    kr = ky_sub.add_parser("rotate", help="re-encrypt personal data under the first key of NOTIFIER_PII_KEYS")
    kr.add_argument("--dry-run", action="store_true", help="count what would be re-encrypted, change nothing")


def _letter_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", help="only letters with this dlq.reason (e.g. invalid_event)")
    p.add_argument("--partition", type=int, help="only letters in this partition of the dead-letter topic")
    p.add_argument("--from-offset", type=int, help="only from this offset of the dead-letter topic")
    p.add_argument("--to-offset", type=int, help="only up to this offset (inclusive)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="notifier",
        description="Shipment-milestone notifier: Kafka shipment events -> deduplicated SMS -> receipts.",
        epilog="Settings come from NOTIFIER_* environment variables (see README).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="run the service: consume events, send notifications, publish receipts")

    sb = sub.add_parser(
        "sandbox", help="run the sandbox providers (Twilio, Infobip, SendGrid APIs) for local use"
    )
    sb.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sb.add_argument("--port", type=int, default=18700, help="port to listen on (default: 18700)")
    sb.add_argument(
        "--sendgrid-events-url",
        default="http://127.0.0.1:8080/callbacks/sendgrid/events",
        help="where the sandbox posts SendGrid's signed events (the service's callback endpoint)",
    )

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending schema migrations")

    tp = sub.add_parser("topics", help="create the input, receipts and dead-letter topics if missing")
    tp.add_argument(
        "--partitions", type=int, default=4, help="partitions of a topic created now (default: 4)"
    )

    fd = sub.add_parser("feed", help="publish a file of JSON-lines events to the input topic")
    fd.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=None,
        help="JSON lines, one event each; default: the sample events",
    )
    fd.add_argument("--topic", default=None, help="default: the first input topic")

    tp_ = sub.add_parser("templates", help="check every message template, or preview one")
    tp_sub = tp_.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    tp_sub.add_parser("check", help="render every template against worst-case data; fail on budget or error")
    rd = tp_sub.add_parser("render", help="print one rendered message with its encoding and segments")
    rd.add_argument("--milestone", required=True, choices=[m.value for m in Milestone], help="which message")
    rd.add_argument("--locale", required=True, choices=["zh-HK", "en"], help="the customer's language")
    rd.add_argument(
        "--follow-up",
        choices=["pickup_reminder", "survey"],
        default=None,
        help="the message that follows the milestone's instead (with --milestone ready_for_pickup)",
    )
    rd.add_argument("--channel", choices=["sms", "email"], default="sms", help="default: sms")
    rd.add_argument("--worst-case", action="store_true", help="use the longest sample data")
    rd.add_argument(
        "--names", choices=["latin", "cjk"], default="latin", help="the worst case's names and places"
    )

    _add_privacy_commands(sub)
    add_pilot_command(sub)
    add_numbers_command(sub)

    from service.dwell_cli import add_report_commands  # noqa: PLC0415  # keep --help's imports light

    add_report_commands(sub)

    dq = sub.add_parser("dlq", help="dead letters: count them by reason, or replay them after a fix")
    dq_sub = dq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dl = dq_sub.add_parser("list", help="count the dead letters (those matching the filters) by reason")
    _letter_filters(dl)
    dr = dq_sub.add_parser("replay", help="copy the matching dead letters back onto their source topics")
    _letter_filters(dr)
    add_guard_flags(dr, "replay (re-send)")

    sc = sub.add_parser("schemas", help="JSON Schemas of the event and receipt contracts")
    sc_sub = sc.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    for name, what in (
        ("export", "write the schemas generated from the models into DIR"),
        ("check", "fail when a schema in DIR differs from the models (run export)"),
    ):
        sc_sub.add_parser(name, help=what).add_argument(
            "--dir",
            type=Path,
            default=schemas_dir(),
            help="default: the package's schemas (in a checkout: schemas/)",
        )

    st = sub.add_parser("settings", help="the settings reference generated from the settings model")
    st_sub = st.add_subparsers(dest="settings_command", required=True, metavar="ACTION")
    for name, what in (
        ("reference", "print the reference (a Markdown section), or write it into FILE's marked section"),
        ("check", "fail when FILE's settings section differs from the model (run reference --write)"),
    ):
        st_sub.add_parser(name, help=what).add_argument(
            "--write" if name == "reference" else "--file",
            dest="file",
            type=Path,
            default=None if name == "reference" else Path("README.md"),
            metavar="FILE",
            help="a Markdown file with the section's two marker lines"
            + ("" if name == "reference" else " (default: README.md)"),
        )

    dm = sub.add_parser(
        "demo", help="run everything locally: sandbox, service, sample feed; print what happened"
    )
    dm.add_argument(
        "file", type=Path, nargs="?", default=None, help="events to feed; default: the sample events"
    )
    dm.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the outcomes (default: 60)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keys" and args.keys_command == "generate":  # needs no settings: it makes one
        return _generate_key(args)
    if args.command == "settings":  # needs no settings: it describes them
        return _settings_reference(args.settings_command, args.file)
    from service import logs  # noqa: PLC0415  # keep --help free of the logging set-up

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # A one-shot command says in one line why the broker failed; the service logs aiokafka's reasons.
    logs.configure(settings.log_level, settings.log_format, quiet_kafka=args.command not in ("run", "demo"))
    return _run_command(args, settings)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop (about a fifth less CPU per message than Python's), or Python's own."""
    if name == "uvloop":
        import uvloop  # noqa: PLC0415  # only the commands that run a loop load it

        return uvloop.new_event_loop
    return None


def _run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the command; every error it expects becomes one line on stderr and an exit code."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
            return runner.run(_dispatch(args, settings))
    except (ConfigError, CommandRefused) as exc:  # a refused command exits like a usage error
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (NotifierError, KafkaConnectionError, OSError) as exc:
        if (hint := unreachable_hint(exc, settings)) is not None:  # the fix is the operator's
            print(f"notifier: {hint}", file=sys.stderr)
            return EXIT_CONFIG
        if not isinstance(exc, NotifierError):
            raise
        print(f"notifier: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _generate_key(args: argparse.Namespace) -> int:
    import base64  # noqa: PLC0415
    import os  # noqa: PLC0415

    from service.privacy.crypto import Keyring  # noqa: PLC0415

    blind = base64.b64encode(os.urandom(32)).decode()
    if args.kind == "pii":
        print(Keyring.generate_spec(args.id))
    elif args.kind == "blind-index":
        print(blind)
    else:
        link = base64.b64encode(os.urandom(32)).decode()
        print(
            f"NOTIFIER_PII_KEYS={Keyring.generate_spec(args.id)}\nNOTIFIER_BLIND_INDEX_KEY={blind}\n"
            f"NOTIFIER_LINK_SIGNING_KEY={link}"
        )
    return 0


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0911, PLR0912  # one branch per command
    match args.command:
        case "run":
            return await _run(settings)
        case "sandbox":
            return await _sandbox(settings, args)
        case "db":
            from service.store.migrate import migrate_database  # noqa: PLC0415
            from service.store.postgres import translated  # noqa: PLC0415

            owner = settings.migration_database_url
            async with translated():
                applied = await migrate_database(
                    owner or settings.database_url, settings.database_url if owner else None
                )
            print(f"migrations applied ({len(applied)} new)")
            return 0
        case "topics":
            from service.kafka.admin import ensure_topics, topic_configs  # noqa: PLC0415

            topics = dict.fromkeys(
                [*settings.input_topics, settings.receipts_topic, settings.dead_letter_topic], args.partitions
            )
            await ensure_topics(settings.kafka_bootstrap_servers, topics, topic_configs(settings))
            print("topics ready: " + ", ".join(topics))
            return 0
        case "feed":
            from service.feed import publish_feed, read_feed  # noqa: PLC0415
            from service.progress import progress_bar  # noqa: PLC0415

            topic = args.topic or settings.input_topics[0]
            events = read_feed(_events_file(args.file))
            with progress_bar("publishing") as progress:
                n = await publish_feed(settings.kafka_bootstrap_servers, topic, events, progress)
            print(f"published {n} events to {topic}")
            return 0
        case "schemas":
            return _schemas(args.schemas_command, args.dir)
        case "dlq":
            from service import dlq  # noqa: PLC0415
            from service.progress import progress_bar  # noqa: PLC0415

            letters = await dlq.read_letters(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
            chosen = dlq.matching(
                letters,
                reason=args.reason,
                partition=args.partition,
                from_offset=args.from_offset,
                to_offset=args.to_offset,
            )
            if args.dlq_command == "list":
                print(dlq.summary(chosen))
                return 0
            chosen = dlq.select(chosen)
            plan = (
                f"replay {len(chosen)} dead letter(s) onto their source topics (their messages may be sent)"
            )
            if not confirm(plan, dry_run=args.dry_run, yes=args.yes):
                return 0
            with progress_bar("replaying") as progress:
                n = await dlq.replay(
                    settings.kafka_bootstrap_servers, settings.dead_letter_topic, chosen, progress
                )
            print(f"replayed {n} dead letter(s) onto their source topics")
            if skipped := dlq.omitted(letters):
                print(
                    f"{skipped} bounded copy(ies) skipped: no value; read them at their dlq.source_* coordinates"
                )
            return 0
        case "templates":
            return _templates(settings, args)
        case "pilot":
            return await run_pilot_command(settings, args)
        case "numbers":
            return await run_numbers_command(settings, args)
        case "purge" | "erase" | "optout" | "keys" | "staff":
            from service.privacy_cli import run_privacy_command  # noqa: PLC0415

            return await run_privacy_command(settings, args)
        case "report":
            from service.dwell_cli import run_report  # noqa: PLC0415

            return await run_report(settings, args)
        case "demo":
            from service.demo import run_demo  # noqa: PLC0415

            return await run_demo(settings, _events_file(args.file), timeout_s=args.timeout)
    return EXIT_FAILURE


def _events_file(given: Path | None) -> Path:
    path = given or sample_events()
    if not path.is_file():
        raise ConfigError(f"no such file: {path} (give a JSON-lines file of events, or none for the samples)")
    return path


def unreachable_hint(exc: BaseException, settings: Settings) -> str | None:
    """One line naming the fix for an unreachable dependency or a busy port; None: not one of those."""
    if isinstance(exc, StoreUnavailable) and isinstance(exc.__cause__, OSError | TimeoutError):
        return (
            f"cannot reach PostgreSQL ({exc}): is it up, and are NOTIFIER_DATABASE_URL "
            "(and NOTIFIER_MIGRATION_DATABASE_URL) right?"
        )
    if isinstance(exc, KafkaConnectionError | ConsumerUnavailable):
        return (
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: is the broker up, and is "
            "NOTIFIER_KAFKA_BOOTSTRAP_SERVERS right?"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port in use ({exc.strerror or exc}): stop the process holding it, or choose another port "
            "(NOTIFIER_HTTP_PORT, NOTIFIER_METRICS_PORT; sandbox: --port)"
        )
    return None


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _run(settings: Settings) -> int:
    if settings.workers > 1:
        import os  # noqa: PLC0415

        from service.workers import supervise  # noqa: PLC0415

        return await supervise(settings, os.environ, _stop_on_signals())
    from service.app import Service  # noqa: PLC0415

    await Service(settings).run(_stop_on_signals())
    return 0


async def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from service.sandbox.serve import SandboxState, run_sandbox  # noqa: PLC0415

    state = SandboxState(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        infobip_api_key=settings.infobip_api_key.get_secret_value(),
        infobip_webhook_user=settings.infobip_webhook_user,
        infobip_webhook_password=settings.infobip_webhook_password.get_secret_value(),
        sendgrid_api_key=settings.sendgrid_api_key.get_secret_value(),
        sendgrid_event_webhook_url=args.sendgrid_events_url,
    )
    runner = await run_sandbox(args.host, args.port, state)
    print(f"sandbox providers (Twilio, Infobip, SendGrid) on http://{args.host}:{args.port}", flush=True)
    print(f"SendGrid event-webhook public key: {state.sendgrid_signer.public_key_b64}", flush=True)
    await _stop_on_signals().wait()
    await runner.cleanup()
    return 0


def _templates(settings: Settings, args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from service.compose.render import Renderer  # noqa: PLC0415
    from service.domain.follow_ups import FollowUp  # noqa: PLC0415
    from service.domain.links import LinkSigner  # noqa: PLC0415
    from service.templates_check import (  # noqa: PLC0415
        check_templates,
        follow_up_extra,
        format_results,
        sample_update,
        survey_url_like,
    )

    # Links as long as they will be in production (or a typical public URL when none is set).
    links = LinkSigner(os.urandom(32), settings.public_base_url or "https://notify.example.com.hk")
    renderer = Renderer(
        settings.templates_dir,
        brand=settings.brand_name,
        contact_phone=settings.contact_phone,
        contact_email=settings.contact_email,
        default_locale=settings.default_locale,
        links=links,
        max_sms_segments=settings.sms_max_segments,
    )
    survey_url = survey_url_like(settings.survey_base_url)  # as long as the configured survey's
    if args.templates_command == "check":
        results = check_templates(renderer, settings.templates_dir, survey_url=survey_url)
        print(format_results(results))
        return 0 if all(r.ok for r in results) else EXIT_FAILURE
    milestone, update = (
        Milestone(args.milestone),
        sample_update(worst_case=args.worst_case, script=args.names),
    )
    follow_up = FollowUp(args.follow_up) if args.follow_up else None
    if follow_up is not None and milestone is not follow_up.milestone:
        raise CommandRefused(f"--follow-up {follow_up} follows --milestone {follow_up.milestone}")
    template = follow_up.value if follow_up else None
    extra = (
        follow_up_extra(follow_up, survey_url=survey_url, worst_case=args.worst_case) if follow_up else None
    )
    if args.channel == "sms":
        msg = renderer.render_sms(milestone, update, args.locale, template=template, extra=extra)
        print(msg.body)
        print(f"\n-- {msg.encoding}, {msg.segments} segment(s), {len(msg.body)} characters")
    else:
        mail = renderer.render_email(milestone, update, args.locale, template=template, extra=extra)
        print(f"Subject: {mail.subject}\n\n{mail.text}\n\n-- HTML --\n{mail.html}")
    return 0


def _settings_reference(action: str, file: Path | None) -> int:
    from service.config.reference import reference, with_reference  # noqa: PLC0415

    if file is None:
        print(reference())
        return 0
    try:
        text = file.read_text(encoding="utf-8")
        updated = with_reference(text)
    except (OSError, ValueError) as exc:
        print(f"notifier: {file}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if action == "check":
        if updated != text:
            print(
                f"{file}: settings section out of date (run: notifier settings reference --write {file})",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        return 0
    file.write_text(updated, encoding="utf-8")
    print(f"wrote the settings reference into {file}")
    return 0


def _schemas(action: str, folder: Path) -> int:
    from service.contracts import dump_schema, json_schemas  # noqa: PLC0415

    stale = []
    for name, schema in json_schemas().items():
        path = folder / name
        text = dump_schema(schema)
        if action == "export":
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print("schemas out of date (run: notifier schemas export): " + ", ".join(stale), file=sys.stderr)
        return EXIT_FAILURE
    return 0
