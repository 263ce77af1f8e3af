"""The write ledger: every post carries a unique nonce, and the outcome the API gave for it.

- acknowledged: the API answered 2xx with the post's id. It must be readable exactly once, with
  that id (ids never change, not even when a move reshards the data).
- failed: the API answered an error (or the connection was never made): the app said it did not
  store it. Found anyway, it is reported (`failed_present`), not counted as lost.
- unknown: a timeout or a connection broken after the request was sent: it may or may not be
  stored; it is not lost if missing (`unknown_present` counts those that were stored).

`verify` compares the ledger with what reading every user's posts back returned. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

NONCE_RE = re.compile(r"\bchirp-load ([0-9a-z]+\.\d+\.\d+)\b")
SAMPLE = 10  # lost / duplicated nonces named in the summary, for a human to look up


def nonce(run_id: str, user: int, seq: int) -> str:
    return f"{run_id}.{user}.{seq}"


def post_body(nonce_: str) -> str:
    return f"chirp-load {nonce_}: a post from the load generator"


def nonce_of(body: str) -> str | None:
    match = NONCE_RE.search(body or "")
    return match.group(1) if match else None


@dataclass
class Ledger:
    acked: dict[str, str] = field(default_factory=dict)  # nonce -> the post id the API gave
    failed: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    user_of: dict[str, int] = field(default_factory=dict)  # nonce -> user index

    def ack(self, nonce_: str, user: int, post_id: str) -> None:
        self.acked[nonce_] = str(post_id)
        self.user_of[nonce_] = user

    def fail(self, nonce_: str, user: int) -> None:
        self.failed.add(nonce_)
        self.user_of[nonce_] = user

    def unknown_outcome(self, nonce_: str, user: int) -> None:
        self.unknown.add(nonce_)
        self.user_of[nonce_] = user

    def counts(self) -> dict[str, int]:
        return {"writes_acked": len(self.acked), "writes_failed": len(self.failed),
                "writes_unknown": len(self.unknown)}


def seen_from(bodies_and_ids: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """nonce -> the ids of every post read back that carries it."""
    seen: dict[str, list[str]] = {}
    for body, post_id in bodies_and_ids:
        found = nonce_of(body)
        if found is not None:
            seen.setdefault(found, []).append(str(post_id))
    return seen


@dataclass(frozen=True)
class Verdict:
    lost: int  # acknowledged, not found
    duplicated: int  # extra copies of any write of this run
    renumbered: int  # acknowledged, found under another id
    unknown_present: int  # outcome unknown, found (stored)
    failed_present: int  # answered as failed, found anyway
    unverified: int  # acknowledged writes of users whose posts could not be read back
    lost_sample: list[str]
    duplicated_sample: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.renumbered or self.unverified)

    def as_dict(self) -> dict:
        return {"lost": self.lost, "duplicated": self.duplicated, "renumbered": self.renumbered,
                "unknown_present": self.unknown_present, "failed_present": self.failed_present,
                "unverified": self.unverified, "lost_sample": self.lost_sample,
                "duplicated_sample": self.duplicated_sample}


def verify(ledger: Ledger, seen: Mapping[str, list[str]],
           unread_users: Iterable[int] = ()) -> Verdict:
    """What reading back (`seen`, from seen_from) says about the ledger. Writes of `unread_users`
    (whose posts could not be read) are neither lost nor proven: `unverified`."""
    unread = set(unread_users)
    checked = {n: post_id for n, post_id in ledger.acked.items()
               if ledger.user_of[n] not in unread}
    lost = sorted(n for n in checked if n not in seen)
    ours = set(ledger.user_of)
    duplicated = sorted(n for n, ids in seen.items() if n in ours and len(ids) > 1)
    renumbered = [n for n, post_id in checked.items()
                  if n in seen and post_id not in seen[n]]
    return Verdict(
        lost=len(lost),
        duplicated=sum(len(seen[n]) - 1 for n in duplicated),
        renumbered=len(renumbered),
        unknown_present=sum(1 for n in ledger.unknown if n in seen),
        failed_present=sum(1 for n in ledger.failed if n in seen),
        unverified=len(ledger.acked) - len(checked),
        lost_sample=[f"{n} (id {checked[n]})" for n in lost[:SAMPLE]],
        duplicated_sample=[f"{n} (ids {', '.join(seen[n])})" for n in duplicated[:SAMPLE]],
    )
