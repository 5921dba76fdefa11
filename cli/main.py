"""The ``cadterm`` command line: one console script, one subcommand per job.

    cadterm console     open the dispatcher console (the default)
    cadterm demo        a simulated control room: backend, simulator and console
    cadterm server      run the embedded dispatch backend
    cadterm scenario    run a scripted scenario against a fresh backend
    cadterm schema      write the protocol's JSON Schemas
    cadterm operator    add, remove, re-role or list the operators who may log in
    cadterm workstation add, remove or list the workstations commands may come from
    cadterm ssh-account set up a console-only SSH account for a dispatcher
    cadterm gazetteer   check a force's gazetteer file, write the demo's, try a location
    cadterm locate      show where cadterm keeps its files

This module must stay cheap to import: Textual, Rich and the server's web stack are
imported inside the handler that needs them, never at module level, so ``cadterm
--version`` and ``cadterm operator list`` start at once over a thin SSH link.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time, like every heavy module here
    from cadterm.tui.settings import ConsoleSettings

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8740
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
ROLES = ("dispatcher", "supervisor", "read_only", "intake")


class CliError(Exception):
    """A problem to report as one line on stderr, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cadterm")
    except PackageNotFoundError:
        return "unknown"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {value}")
    return value


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return args.config
    from cadterm.cli.locations import default_server_config_path

    return default_server_config_path()


# --- cadterm server --------------------------------------------------------------------


def _cmd_server(args: argparse.Namespace) -> int:
    import logging

    from cadterm.cli.locations import default_db_path
    from cadterm.server.run import serve

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    db = args.db if args.db is not None else default_db_path()
    return int(
        serve(
            db=db,
            node=args.node,
            host=args.host,
            port=args.port,
            config_path=_config_path(args),
            log_level=args.log_level,
        )
    )


# --- cadterm schema --------------------------------------------------------------------


def _cmd_schema(args: argparse.Namespace) -> int:
    from cadterm.protocol.schema import render_schemas

    out: Path = args.out
    documents = render_schemas()
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in sorted(documents.items()):
            target = out / name
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
        for stale in sorted(out.glob("*.json")):
            if stale.name not in documents:
                stale.unlink()
                print(f"removed {stale} (no longer part of the protocol)")
    except OSError as exc:
        raise CliError(f"cannot write schemas to {out}: {exc}", EXIT_FAILURE) from None
    return EXIT_OK


# --- cadterm operator ------------------------------------------------------------------


def _entry_or_refuse(model, kind: str, **fields):
    """Build a config entry, or refuse with every invalid field named (file untouched)."""
    from pydantic import ValidationError

    from cadterm.server.config import describe_errors

    try:
        return model(**fields)
    except ValidationError as exc:
        raise CliError(f"invalid {kind}: {describe_errors(exc)}") from None


def _cmd_operator_add(args: argparse.Namespace) -> int:
    from cadterm.server.auth import hash_token, new_token
    from cadterm.server.config import OperatorEntry
    from cadterm.server.config_edit import add_operator

    path = _config_path(args)
    token = new_token()
    entry = _entry_or_refuse(
        OperatorEntry,
        "operator",
        id=args.id,
        name=args.name,
        role=args.role,
        token_sha256=hash_token(token),
    )
    # A missing config starts empty: the operator added here is the first one, and no
    # default dispatcher is created whose token nobody would ever see.
    add_operator(path, entry)
    print(f"added operator {entry.id} ({entry.name}, {entry.role.value}) to {path}")
    print(f"token: {token}")
    print(
        "Keep this token now: it is shown once and not stored (the config holds only its hash).",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_operator_remove(args: argparse.Namespace) -> int:
    from cadterm.server.config_edit import remove_operator

    path = _config_path(args)
    remove_operator(path, args.id)
    print(f"removed operator {args.id} from {path}; their token stops working at once")
    return EXIT_OK


def _cmd_operator_role(args: argparse.Namespace) -> int:
    from cadterm.protocol.domain import Role
    from cadterm.server.config_edit import set_operator_role

    path = _config_path(args)
    set_operator_role(path, args.id, Role(args.role))
    print(f"operator {args.id} is now {args.role} in {path}")
    return EXIT_OK


def _existing_config(path: Path):
    from cadterm.server.config import load_config

    if not path.exists():
        raise CliError(
            f"no server config at {path} yet; `cadterm server` creates it on first start, "
            "or add an operator with `cadterm operator add`"
        )
    return load_config(path)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


def _cmd_operator_list(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _existing_config(path)
    if not config.operators:
        print(f"no operators in {path}")
        return EXIT_OK
    _print_table(
        [("ID", "NAME", "ROLE")] + [(op.id, op.name, op.role.value) for op in config.operators]
    )
    return EXIT_OK


# --- cadterm workstation ---------------------------------------------------------------


def _cmd_workstation_add(args: argparse.Namespace) -> int:
    from cadterm.server.config import WorkstationEntry
    from cadterm.server.config_edit import add_workstation

    path = _config_path(args)
    entry = _entry_or_refuse(
        WorkstationEntry,
        "workstation",
        id=args.id,
        description=args.description,
        operators=args.operator or None,
    )
    add_workstation(path, entry)
    who = ", ".join(entry.operators) if entry.operators else "any operator"
    print(f"added workstation {entry.id} ({who}) to {path}")
    return EXIT_OK


def _cmd_workstation_remove(args: argparse.Namespace) -> int:
    from cadterm.server.config_edit import remove_workstation

    path = _config_path(args)
    remove_workstation(path, args.id)
    print(f"removed workstation {args.id} from {path}; commands from it are refused")
    return EXIT_OK


def _cmd_workstation_list(args: argparse.Namespace) -> int:
    path = _config_path(args)
    config = _existing_config(path)
    if not config.workstations:
        print(f"no workstations in {path}")
        return EXIT_OK
    _print_table(
        [("ID", "DESCRIPTION", "OPERATORS")]
        + [
            (ws.id, ws.description or "", ", ".join(ws.operators) if ws.operators else "(any)")
            for ws in config.workstations
        ]
    )
    return EXIT_OK


# --- cadterm locate --------------------------------------------------------------------


def _cmd_locate(args: argparse.Namespace) -> int:
    from cadterm.cli import locations

    rows = [
        ("data dir", locations.data_dir()),
        ("database", locations.default_db_path()),
        ("config dir", locations.config_dir()),
        ("server config", locations.default_server_config_path()),
        ("console settings", locations.console_settings_path()),
        ("console journal", locations.console_journal_path()),
        ("last known picture", locations.console_journal_path().with_name("picture.json")),
        ("console log", locations.console_log_path()),
    ]
    width = max(len(label) for label, _ in rows)
    for label, path in rows:
        print(f"{label + ':':<{width + 1}}  {path}")
    return EXIT_OK


# --- cadterm console -------------------------------------------------------------------


def _need_a_terminal() -> None:
    import os

    from cadterm.cli.terminal import terminal_problem

    if problem := terminal_problem(sys.stdin, sys.stdout, os.environ.get("TERM")):
        raise CliError(problem, status=EXIT_FAILURE)


def _console_settings(args: argparse.Namespace, **more: object) -> ConsoleSettings:
    """The console settings: the file and environment, then the command line's flags."""
    from cadterm.cli.locations import console_settings_path
    from cadterm.tui.settings import SettingsError, load_settings

    try:
        return load_settings(
            console_settings_path(),
            url=list(args.url) or None,
            token=args.token,
            workstation=args.workstation,
            journal=args.journal,
            **more,
        )
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _cmd_console(args: argparse.Namespace) -> int:
    settings = _console_settings(args, theme=args.theme)
    if not settings.url:
        raise CliError(
            "no backend URL: give one (cadterm console http://127.0.0.1:8740), set "
            "CADTERM_URL, or put url = [...] in the console settings (cadterm locate)"
        )
    if not settings.token:
        raise CliError(
            "no token: pass --token, set CADTERM_TOKEN, or put token = ... in the console "
            "settings (cadterm locate)"
        )
    _need_a_terminal()
    from cadterm.cli.console import run_console

    return run_console(settings)


# --- cadterm pack ------------------------------------------------------------------------


def _cmd_pack(args: argparse.Namespace) -> int:
    from cadterm.cli.console import picture_file
    from cadterm.cli.locations import data_dir
    from cadterm.cli.pack_source import NoPicture, pack_source
    from cadterm.tui.pack import write_pack

    settings = _console_settings(args)
    try:
        source = pack_source(settings, picture_file(settings))
    except NoPicture as exc:
        raise CliError(str(exc)) from None
    written = write_pack(source, args.out or data_dir() / "packs")
    print(f"CAD-down pack: picture of {source.of.astimezone():%H:%M} ({source.origin})")
    for path in written:
        print(f"  {path}")
    return EXIT_OK


# --- cadterm ssh-account ----------------------------------------------------------------


def _read_token(path: Path | None) -> str:
    if path is not None:
        try:
            return _one_token(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the token from {path}: {exc}") from None
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("operator's token: ").strip()
    return sys.stdin.readline().strip()


def _one_token(text: str, source: str) -> str:
    # A file of several lines is not one token: which line would be meant?
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        raise CliError(f"{source} holds {len(lines)} lines; put the one token on one line")
    return text.strip()


def _cmd_ssh_account(args: argparse.Namespace) -> int:
    import os
    import pwd

    from pydantic import ValidationError

    from cadterm.cli.ssh_account import (
        ConsoleAccount,
        console_command,
        login_name_problem,
        python_problem,
        sshd_block,
        write_account_settings,
    )
    from cadterm.tui.settings import ConsoleSettings

    if problem := login_name_problem(args.user):
        raise CliError(problem)
    try:
        entry = pwd.getpwnam(args.user)
    except KeyError:
        entry = None
    if args.home is None and entry is None:
        raise CliError(f"no account named {args.user!r} here: create it first, or pass --home")
    token = _read_token(args.token_file)
    if not token:
        raise CliError("no token: give it on standard input or with --token-file")
    try:
        given = {"workstation": args.workstation} if args.workstation is not None else {}
        checked = ConsoleSettings(url=args.url, token=token, **given)
    except ValidationError as exc:
        raise CliError(f"invalid account settings: {exc.errors()[0]['msg']}") from None
    account = ConsoleAccount(
        user=args.user,
        home=args.home or Path(entry.pw_dir),
        urls=tuple(checked.url),
        token=token,
        workstation=args.workstation and checked.workstation,
    )
    owner = (entry.pw_uid, entry.pw_gid) if entry is not None and os.geteuid() == 0 else None
    try:
        path = write_account_settings(account, owner=owner)
    except OSError as exc:
        raise CliError(f"cannot write {account.settings_path}: {exc.strerror}") from None
    print(f"wrote {path} (mode 0640)", file=sys.stderr)
    if problem := python_problem():
        print(f"warning: {problem}", file=sys.stderr)
    print(sshd_block(args.user, console_command()), end="")
    return EXIT_OK


# --- cadterm demo -----------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    _need_a_terminal()
    from cadterm.cli.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            fresh=args.fresh,
            rate=args.rate,
            speed=args.speed,
            seed=args.seed,
            auto_dispatch=not args.manual,
            theme=args.theme,
            supervisor=args.supervisor,
        )
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value:g}")
    return value


# --- cadterm scenario -------------------------------------------------------------------


def _cmd_scenario(args: argparse.Namespace) -> int:
    from cadterm.sim.scenario import main as scenario_main

    argv = [args.scenario_command, str(args.file)]
    if getattr(args, "speed", None) is not None:
        argv += ["--speed", repr(args.speed)]
    return scenario_main(argv, prog="cadterm scenario")


# --- cadterm gazetteer ------------------------------------------------------------------


def _read_gazetteer(path: Path):
    from cadterm.domain.gazetteer_csv import GazetteerFileError, read_gazetteer_csv

    try:
        with path.open(encoding="utf-8-sig", newline="") as lines:
            return read_gazetteer_csv(lines, source=str(path))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_FAILURE) from None
    except GazetteerFileError as exc:
        raise CliError(f"{path} is not a valid gazetteer:\n{exc}", EXIT_FAILURE) from None


def _cmd_gazetteer_check(args: argparse.Namespace) -> int:
    from cadterm.domain.gazetteer import EntryKind

    gazetteer = _read_gazetteer(args.file)
    streets = [e for e in gazetteer.entries if e.kind is EntryKind.STREET]
    numbered = sum(1 for e in streets if e.first_house is not None)
    lines = sum(1 for e in streets if e.end is not None)
    places = len(gazetteer) - len(streets)
    sectors = sorted({e.sector for e in gazetteer.entries if e.sector})
    unsectored = sum(1 for e in gazetteer.entries if not e.sector)
    print(f"{args.file}: {len(gazetteer)} entries")
    print(f"  streets:   {len(streets)} ({lines} with both ends, {numbered} with house numbers)")
    print(f"  places:    {places}")
    print(f"  junctions: {len(gazetteer.junctions)}")
    print(f"  sectors:   {len(sectors)}" + (f" ({', '.join(sectors)})" if sectors else ""))
    if unsectored:
        print(f"  {unsectored} entries have no sector: incidents there get none")
    return EXIT_OK


def _cmd_gazetteer_demo(args: argparse.Namespace) -> int:
    from cadterm.sim.gazetteer import brackley_csv_text

    try:
        args.out.write_text(brackley_csv_text(), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}", EXIT_FAILURE) from None
    print(f"wrote the demo town's gazetteer to {args.out}")
    return EXIT_OK


def _cmd_gazetteer_find(args: argparse.Namespace) -> int:
    gazetteer = _read_gazetteer(args.file)
    completions = gazetteer.complete(args.text, limit=args.limit)
    print(f"completions of {args.text!r}:" if completions else f"no completions of {args.text!r}")
    for completion in completions:
        print(f"  {completion}")
    found = gazetteer.match(args.text)
    if found is None:
        print("match: none (an incident here would keep the text as typed, unverified)")
        return EXIT_FAILURE
    where = f"{found.position.lat:.6f}, {found.position.lon:.6f}"
    print(f"match: {found.address} ({found.kind.value}) at {where}, sector {found.sector or '-'}")
    return EXIT_OK


def _cmd_gazetteer_from_os_open_names(args: argparse.Namespace) -> int:
    import csv

    from cadterm.cli.os_open_names import convert_open_names, open_names_rows
    from cadterm.domain.gazetteer_csv import write_gazetteer_csv

    header = None
    if args.header is not None:
        try:
            with args.header.open(encoding="utf-8-sig", newline="") as lines:
                header = [cell.strip().upper() for cell in next(csv.reader(lines), [])]
        except OSError as exc:
            raise CliError(f"cannot read {args.header}: {exc.strerror}", EXIT_FAILURE) from None
        if "NAME1" not in header:
            raise CliError(f"{args.header} is not an OS Open Names header (no NAME1 column)")

    def records():
        for path in args.files:
            try:
                with path.open(encoding="utf-8-sig", newline="") as lines:
                    yield from open_names_rows(lines, header)
            except OSError as exc:
                raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_FAILURE) from None
            except ValueError as exc:
                raise CliError(f"{path}: {exc}") from None

    done = convert_open_names(records(), areas=args.area, sector_column=args.sector_column)
    if not done.entries:
        raise CliError("no records kept: check --area and the header", EXIT_FAILURE)
    try:
        args.out.write_text(write_gazetteer_csv(done.entries), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}", EXIT_FAILURE) from None
    gazetteer = _read_gazetteer(args.out)  # what was written must load as a force's file
    print(f"wrote {len(gazetteer)} entries to {args.out}")
    print(f"  left out: {done.outside} outside the areas, {done.not_kept} postcodes and")
    print(f"  numbered roads, {done.repeated} repeats of a name in its locality")
    for reason in done.unusable[:10]:
        print(f"  unusable: {reason}")
    if len(done.unusable) > 10:
        print(f"  ... and {len(done.unusable) - 10} more unusable records")
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (no side effects, nothing imported)."""
    parser = argparse.ArgumentParser(
        prog="cadterm",
        description="Terminal dispatch console for control rooms, with a reference backend.",
    )
    parser.add_argument("--version", action="version", version=f"cadterm {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(
        handler=_cmd_console, url=[], token=None, theme=None, workstation=None, journal=None
    )

    console = sub.add_parser(
        "console", help="open the dispatcher console (the default with no command)"
    )
    console.add_argument("url", nargs="*", metavar="URL", help="backend URL(s), tried in order")
    console.add_argument("--token", default=None, help="bearer token (or CADTERM_TOKEN)")
    console.add_argument("--theme", default=None, help="theme name (see docs/console.md)")
    console.add_argument("--workstation", default=None, help="workstation name for the record")
    console.add_argument("--journal", type=Path, default=None, help="offline journal file")
    console.set_defaults(handler=_cmd_console)

    config_help = "server config file (default: see `cadterm locate`)"

    server = sub.add_parser("server", help="run the embedded dispatch backend")
    server.add_argument(
        "--db",
        default=None,
        help="an SQLite file, or postgresql://user@host:port/dbname to share one log with "
        "other nodes (default: an SQLite file, see `cadterm locate`)",
    )
    server.add_argument(
        "--node",
        default=None,
        help="this node's name in /v1/health and the log (default: HOST:PORT)",
    )
    server.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})"
    )
    server.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    server.add_argument("--config", type=Path, default=None, help=config_help)
    server.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="logging level (default: info)"
    )
    server.set_defaults(handler=_cmd_server)

    pack = sub.add_parser(
        "pack",
        help="write the CAD-down pack (open incidents, units, reserved references, "
        "contacts, a paper log) as text and HTML",
    )
    pack.add_argument("url", nargs="*", help="backend URLs (default: the console settings)")
    pack.add_argument("--token", default=None, help="bearer token (default: the settings)")
    pack.add_argument("--workstation", default=None, help="this workstation's id")
    pack.add_argument("--journal", type=Path, default=None, help="the console's journal file")
    pack.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to write into (default: packs in the data dir)",
    )
    pack.set_defaults(handler=_cmd_pack)

    schema = sub.add_parser("schema", help="write the protocol's JSON Schemas")
    schema.add_argument(
        "--out",
        type=Path,
        default=Path("docs/schema"),
        help="directory to write into; stale *.json there are removed (default: docs/schema)",
    )
    schema.set_defaults(handler=_cmd_schema)

    operator = sub.add_parser("operator", help="manage the operators who may log in")
    op_sub = operator.add_subparsers(dest="operator_command", metavar="ACTION")
    op_sub.required = True
    add = op_sub.add_parser("add", help="add an operator and print their new token once")
    add.add_argument("id", metavar="ID", help="operator id, e.g. op7")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--role", required=True, choices=ROLES, help="what they may do")
    add.add_argument("--config", type=Path, default=None, help=config_help)
    add.set_defaults(handler=_cmd_operator_add)
    remove = op_sub.add_parser("remove", help="remove an operator (their token stops working)")
    remove.add_argument("id", metavar="ID")
    remove.add_argument("--config", type=Path, default=None, help=config_help)
    remove.set_defaults(handler=_cmd_operator_remove)
    role = op_sub.add_parser("role", help="change what an operator may do")
    role.add_argument("id", metavar="ID")
    role.add_argument("role", choices=ROLES)
    role.add_argument("--config", type=Path, default=None, help=config_help)
    role.set_defaults(handler=_cmd_operator_role)
    listing = op_sub.add_parser("list", help="list operators (id, name, role)")
    listing.add_argument("--config", type=Path, default=None, help=config_help)
    listing.set_defaults(handler=_cmd_operator_list)

    ssh = sub.add_parser(
        "ssh-account",
        help="set up a console-only SSH account: write its settings, print its sshd block",
    )
    ssh.add_argument("user", metavar="USER", help="the dispatcher's login on this machine")
    ssh.add_argument(
        "--url", action="append", required=True, help="backend URL (repeat to fail over)"
    )
    ssh.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding the operator's token (default: read from standard input)",
    )
    ssh.add_argument("--workstation", default=None, help="workstation id for the record")
    ssh.add_argument("--home", type=Path, default=None, help="the account's home directory")
    ssh.set_defaults(handler=_cmd_ssh_account)

    workstation = sub.add_parser(
        "workstation", help="manage the workstations commands may come from"
    )
    ws_sub = workstation.add_subparsers(dest="workstation_command", metavar="ACTION")
    ws_sub.required = True
    ws_add = ws_sub.add_parser("add", help="register a workstation")
    ws_add.add_argument("id", metavar="ID", help="workstation id, e.g. CR1-WS04")
    ws_add.add_argument("--description", default=None, help="where it is, for people")
    ws_add.add_argument(
        "--operator",
        action="append",
        default=[],
        metavar="OPERATOR_ID",
        help="only this operator may use it (repeat for more; default: anyone)",
    )
    ws_add.add_argument("--config", type=Path, default=None, help=config_help)
    ws_add.set_defaults(handler=_cmd_workstation_add)
    ws_remove = ws_sub.add_parser("remove", help="unregister a workstation")
    ws_remove.add_argument("id", metavar="ID")
    ws_remove.add_argument("--config", type=Path, default=None, help=config_help)
    ws_remove.set_defaults(handler=_cmd_workstation_remove)
    ws_list = ws_sub.add_parser("list", help="list workstations (id, description, operators)")
    ws_list.add_argument("--config", type=Path, default=None, help=config_help)
    ws_list.set_defaults(handler=_cmd_workstation_list)

    demo = sub.add_parser(
        "demo", help="embedded backend + simulated shift + console, in one command"
    )
    demo.add_argument(
        "--fresh", action="store_true", help="start from an empty, throwaway database"
    )
    demo.add_argument(
        "--rate", type=_positive, default=4.0, help="calls a simulated minute (default 4)"
    )
    demo.add_argument(
        "--speed", type=_positive, default=4.0, help="simulated seconds per second (default 4)"
    )
    demo.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    demo.add_argument(
        "--manual",
        action="store_true",
        help="leave all dispatching to you (default: a virtual colleague helps)",
    )
    demo.add_argument("--theme", default=None, help="console theme")
    demo.add_argument(
        "--supervisor",
        action="store_true",
        help="log in as a supervisor (the supervisor board, F10) instead of a dispatcher",
    )
    demo.set_defaults(handler=_cmd_demo)

    scenario = sub.add_parser("scenario", help="run scripted dispatch scenarios")
    sc_sub = scenario.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    sc_run = sc_sub.add_parser(
        "run", help="run FILE on a fresh embedded backend (exit 0 pass, 1 fail, 2 malformed)"
    )
    sc_run.add_argument("file", type=Path)
    sc_run.add_argument("--speed", type=float, help="override the file's time scale")
    sc_run.set_defaults(handler=_cmd_scenario)
    sc_check = sc_sub.add_parser("check", help="only read and check FILE")
    sc_check.add_argument("file", type=Path)
    sc_check.set_defaults(handler=_cmd_scenario)

    gazetteer = sub.add_parser(
        "gazetteer", help="check a gazetteer file, write the demo town's, try a location"
    )
    gz_sub = gazetteer.add_subparsers(dest="gazetteer_command", metavar="ACTION", required=True)
    gz_check = gz_sub.add_parser(
        "check", help="validate FILE (every fault, with its line) and count what it holds"
    )
    gz_check.add_argument("file", type=Path, metavar="FILE")
    gz_check.set_defaults(handler=_cmd_gazetteer_check)
    gz_demo = gz_sub.add_parser("demo", help="write the demo town's gazetteer as CSV")
    gz_demo.add_argument("--out", type=Path, required=True, metavar="FILE")
    gz_demo.set_defaults(handler=_cmd_gazetteer_demo)
    gz_find = gz_sub.add_parser(
        "find", help="show what TEXT completes to in FILE and what it matches (exit 1: none)"
    )
    gz_find.add_argument("file", type=Path, metavar="FILE")
    gz_find.add_argument("text", metavar="TEXT", help='a location, e.g. "37 Gas"')
    gz_find.add_argument("--limit", type=int, default=10, help="completions to show (default 10)")
    gz_find.set_defaults(handler=_cmd_gazetteer_find)
    gz_os = gz_sub.add_parser(
        "from-os-open-names",
        help="build a gazetteer from OS Open Names CSV files (National Grid to WGS84)",
    )
    gz_os.add_argument("files", type=Path, nargs="+", metavar="FILE", help="data files")
    gz_os.add_argument("--out", type=Path, required=True, metavar="FILE")
    gz_os.add_argument(
        "--header",
        type=Path,
        default=None,
        help="OS_Open_Names_Header.csv (the data files have no header line of their own)",
    )
    gz_os.add_argument(
        "--area",
        action="append",
        default=[],
        metavar="NAME",
        help="keep only this county/unitary or district/borough (repeat for more)",
    )
    gz_os.add_argument(
        "--sector-column",
        default="DISTRICT_BOROUGH",
        metavar="COLUMN",
        help="the column that gives each entry's sector (default DISTRICT_BOROUGH)",
    )
    gz_os.set_defaults(handler=_cmd_gazetteer_from_os_open_names)

    locate = sub.add_parser("locate", help="show where cadterm keeps its files")
    locate.set_defaults(handler=_cmd_locate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage/config)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    from cadterm.server.config import ConfigError

    try:
        return handler(args)
    except ConfigError as exc:
        print(f"cadterm: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"cadterm: error: {exc}", file=sys.stderr)
        return exc.status


if __name__ == "__main__":
    raise SystemExit(main())
