"""The switch-over's verification in two passes, pure parts (docs/moves.md, "Verification").

Before the lock, every database (old and new side) creates a temporary logical slot (plugin
test_decoding) at position X over a replication session, which exports the slot's snapshot S:
S sees exactly the transactions whose commit record precedes X, the slot decodes exactly those
after it (the guarantee a dump-then-stream copy rests on). A REPEATABLE READ transaction imports
S and reads its row count and checksum per (table, bucket): the whole tables, while writes go on.
Under the lock, once the new side caught up, a REPEATABLE READ transaction takes the snapshot L,
then a fence message is written (flushed at once) and the slot drained until it decodes the
fence. Every commit L sees precedes the fence in the WAL, and every commit S does not see
follows X: so the changes between X and the fence name every row key whose row differs between
S and L. For those keys only, the rows are read in S and in L, by primary key; then, per
(table, bucket), exactly

    sums(L) = sums(S) - sums(S, changed keys) + sums(L, changed keys)

because a key the slot did not name has the same row (or none) in S and in L. The comparison
old vs new side is then the one made before on whole tables (layout.verification), at the
switch, at the cost of the rows written since S.
"""
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# pg_logical_slot_get_changes() options: no xids in BEGIN/COMMIT, no empty transactions.
PLUGIN = "test_decoding"
OPTIONS = ("include-xids", "0", "skip-empty-xacts", "1")
FENCE_PREFIX = "chirp-move-fence"  # pg_logical_emit_message()'s prefix for the cutover's fences

_FENCE = re.compile(r"message: transactional: 1 prefix: " + re.escape(FENCE_PREFIX)
                    + r", sz: \d+ content:(?P<token>.*)\Z", re.S)

_CHANGE = re.compile(r"table (?P<table>\S+): (?P<action>INSERT|UPDATE|DELETE|TRUNCATE):"
                     r" ?(?P<rest>.*)\Z", re.S)
_COLUMN = re.compile(r"\s*(?P<name>[^\s\[]+)\[(?P<type>.+?)\]:")


def parse_tuple(text: str) -> dict[str, str | None]:
    """test_decoding's `name[type]:value ...` -> {name: value} (quoted values unquoted, SQL null
    -> None). Raises ValueError on anything else."""
    values: dict[str, str | None] = {}
    at = 0
    while at < len(text) and not text[at:].isspace():
        column = _COLUMN.match(text, at)
        if column is None:
            raise ValueError(f"not a column at {at}: {text[at:at + 40]!r}")
        at = column.end()
        if text.startswith("'", at):  # quoted, '' inside
            value, at = [], at + 1
            while True:
                end = text.find("'", at)
                if end < 0:
                    raise ValueError("unterminated quoted value")
                value.append(text[at:end])
                if text.startswith("''", end):
                    value.append("'")
                    at = end + 2
                    continue
                at = end + 1
                break
            values[column["name"]] = "".join(value)
        else:
            end = text.find(" ", at)
            end = len(text) if end < 0 else end
            raw = text[at:end]
            values[column["name"]] = None if raw == "null" else raw
            at = end
    return values


def _key(values: dict[str, str | None], columns: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(int(values[c]) for c in columns)  # KeyError / TypeError / ValueError: unknown


def changed_keys(line: str, tables: dict[str, tuple[str, ...]]
                 ) -> tuple[str, list[tuple[int, ...]] | None] | None:
    """One test_decoding line -> (table, keys it wrote) for the tables given ({name: key
    columns}); (table, None) when the line does not say which rows (TRUNCATE, or a form not
    understood): the whole table must be read again. None for other lines (BEGIN, COMMIT, other
    tables)."""
    change = _CHANGE.match(line)
    if change is None:
        return None
    table = change["table"].removeprefix("public.")
    if table not in tables:
        return None
    columns, rest = tables[table], change["rest"]
    try:
        if change["action"] == "TRUNCATE":
            return table, None
        if change["action"] == "UPDATE" and rest.startswith("old-key: "):
            old, new = rest[len("old-key: "):].split(" new-tuple: ", 1)
            return table, [_key(parse_tuple(old), columns), _key(parse_tuple(new), columns)]
        return table, [_key(parse_tuple(rest), columns)]
    except (KeyError, TypeError, ValueError):
        return table, None


def fence_token(line: str) -> str | None:
    """The token of a fence message line (FENCE_PREFIX, transactional), else None."""
    fence = _FENCE.match(line)
    return None if fence is None else fence["token"]


@dataclass
class Changes:
    """The rows written on one database since its slot's position, per table, and the fences
    decoded so far."""

    tables: dict[str, tuple[str, ...]]  # name -> primary-key columns
    keys: dict[str, set[tuple[int, ...]]] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)  # tables to read again in full
    fences: set[str] = field(default_factory=set)

    def add(self, lines: Iterable[str]) -> None:
        for line in lines:
            token = fence_token(line)
            if token is not None:
                self.fences.add(token)
                continue
            found = changed_keys(line, self.tables)
            if found is None:
                continue
            table, keys = found
            if keys is None:
                self.whole.add(table)
            else:
                self.keys.setdefault(table, set()).update(keys)

    def count(self) -> int:
        return sum(len(keys) for keys in self.keys.values())


def key_parameters(keys: Iterable[tuple[int, ...]], width: int) -> list[list[int]]:
    """Keys as one list per key column (the bigint[] parameters of keyed_checksum_sql)."""
    ordered = sorted(keys)
    return [[key[i] for key in ordered] for i in range(width)]


def combine(before_all: list[tuple], before_changed: list[tuple],
            after_changed: list[tuple]) -> list[tuple[int, int, int]]:
    """Per bucket (bucket, rows, checksum): all rows in S, minus the changed keys' rows in S,
    plus their rows now. Buckets left with no rows and a zero checksum are dropped (as a
    GROUP BY over the table now would not list them)."""
    totals: dict[int, list[int]] = {}
    for rows, sign in ((before_all, 1), (before_changed, -1), (after_changed, 1)):
        for bucket, count, checksum in rows:
            total = totals.setdefault(int(bucket), [0, 0])
            total[0] += sign * int(count)
            total[1] += sign * int(checksum)
    return sorted((bucket, count, checksum) for bucket, (count, checksum) in totals.items()
                  if count or checksum)
