"""Coordination in the Django database, with nothing but the ORM, on any backend with an
upsert (PostgreSQL, MySQL and MariaDB, SQLite).

Layout (models.py): conveyor_claim, conveyor_joinedset with conveyor_setmember, and
conveyor_value for `claim`, `join` and `put`; a `pace` schedule is a conveyor_value row
too, keyed `pace:<key>` (so `put` keys starting with `pace:` are reserved), its value the
next free slot as text (no migration for it: a row of text and an expiry is all it is).
- `claim` is a loop of single statements: UPDATE takes the key if it is ours or expired,
  else INSERT (the primary key lets one racing insert win), else read the holder.
- `join` is one transaction that first locks each set's head row with an UPDATE, keys
  in sorted order: a row lock on PostgreSQL and MySQL; on SQLite the write lock, taken
  before any read so that two transactions never deadlock upgrading. Joins of one key
  take turns, so each sees its own size.
- `pace` is one transaction that locks the schedule's row with an UPDATE (creating it
  if absent, as `join` does its head), then reads and moves its slot; callers of one
  key take turns. Its clock is the caller's (the ORM has no portable server time).
Connections, threads and expiry: database.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q

from conveyor.contrib.django.database import CHUNK, OrmStore, fit

ATTEMPTS = 50  # of a claim or a set's lock racing with others, before giving up


class DjangoCoordination(OrmStore):
    """The Coordination protocol on the Django ORM. See the module docstring for how."""

    what = "coordination store"

    def __init__(self, url: str = "django://") -> None:
        super().__init__(url)
        self.claims = self.models.Claim.objects.db_manager(self.alias)
        self.sets = self.models.JoinedSet.objects.db_manager(self.alias)
        self.members = self.models.SetMember.objects.db_manager(self.alias)
        self.values = self.models.Value.objects.db_manager(self.alias)

    def _purge(self) -> None:
        now = self._dt(time.time())
        for manager in (self.claims, self.values):
            manager.filter(expires_at__lte=now).delete()
        expired_sets = self.sets.filter(expires_at__lte=now)
        self.members.filter(key__in=expired_sets.values("key")).delete()
        expired_sets.delete()

    def claim(self, key: str, owner: str, ttl: float) -> str:
        key = fit(key)

        def claim() -> str:
            for _ in range(ATTEMPTS):
                now = time.time()
                mine = Q(owner=owner) | Q(expires_at__lte=self._dt(now))
                expires = self._dt(now + ttl)
                if self.claims.filter(mine, key=key).update(owner=owner, expires_at=expires):
                    return owner
                try:
                    with transaction.atomic(using=self.alias):
                        self.claims.create(key=key, owner=owner, expires_at=expires)
                    return owner
                except IntegrityError:
                    pass  # another owner holds it (or just took it): who?
                holder = self.claims.filter(key=key, expires_at__gt=self._dt(now)).values_list(
                    "owner", flat=True).first()
                if holder is not None:
                    return str(holder)
                # it expired or was released in between: try again
            raise DatabaseError(f"claim {key!r} changed hands {ATTEMPTS} times in a row")

        return self._run(claim)

    def release(self, key: str, owner: str) -> bool:
        key = fit(key)
        deleted, _ = self._run(lambda: self.claims.filter(
            key=key, owner=owner, expires_at__gt=self._dt(time.time())).delete())
        return bool(deleted)

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        if not entries:
            return []
        # Locks are taken key by key in sorted order (no deadlock between two joins of
        # several keys); the entries of one key keep their order, which sets the sizes.
        order = sorted(range(len(entries)), key=lambda i: fit(entries[i][0]))

        def join() -> list[int]:
            sizes = [0] * len(entries)
            with transaction.atomic(using=self.alias):
                now = time.time()
                heads: dict[str, int] = {}
                for i in order:
                    key, member = fit(entries[i][0]), fit(entries[i][1])
                    if key not in heads:
                        heads[key] = self._lock_set(key, now)
                    if not self.members.filter(key=key, member=member).exists():
                        self.members.create(key=key, member=member)
                        heads[key] += 1
                    sizes[i] = heads[key]
                expires = self._dt(now + ttl)
                for key, size in heads.items():
                    self.sets.filter(key=key).update(size=size, expires_at=expires)
            return sizes

        return self._run(join)

    def _lock_set(self, key: str, now: float) -> int:
        """Lock the head row of the set at `key` (creating it), and return its size; an
        expired set starts afresh. Call inside a transaction."""
        for _ in range(ATTEMPTS):
            if self.sets.filter(key=key).update(size=F("size")):  # the lock
                size, expires = self.sets.filter(key=key).values_list(
                    "size", "expires_at").get()
                if self._ts(expires) > now:
                    return int(size)
                self.members.filter(key=key).delete()
                return 0
            try:
                with transaction.atomic(using=self.alias):
                    self.sets.create(key=key, size=0, expires_at=self._dt(now))
                return 0
            except IntegrityError:
                pass  # another join created it first: lock that one
        raise DatabaseError(f"set {key!r} was created and deleted {ATTEMPTS} times in a row")

    def put(self, key: str, value: str, ttl: float) -> None:
        row = self.values.model(key=fit(key), value=value,
                                expires_at=self._dt(time.time() + ttl))
        self._run(lambda: self.values.bulk_create(
            [row], update_conflicts=True, unique_fields=["key"] if self.unique_on else None,
            update_fields=["value", "expires_at"]))

    def pace(self, key: str, interval: float) -> float:
        key = fit(f"pace:{key}")

        def pace() -> float:
            for _ in range(ATTEMPTS):
                with transaction.atomic(using=self.alias):
                    if self.values.filter(key=key).update(value=F("value")):  # the lock
                        now = time.time()
                        raw, expires = self.values.filter(key=key).values_list(
                            "value", "expires_at").get()
                        slot = max(now, _tat(raw) if self._ts(expires) > now else now)
                        self.values.filter(key=key).update(
                            value=repr(slot + interval), expires_at=self._dt(slot + interval))
                        return slot - now
                try:
                    with transaction.atomic(using=self.alias):
                        now = time.time()
                        self.values.create(key=key, value=repr(now + interval),
                                           expires_at=self._dt(now + interval))
                    return 0.0
                except IntegrityError:
                    pass  # another caller created it first: lock that one
            raise DatabaseError(f"pace {key!r} was created and deleted {ATTEMPTS} times in a row")

        return self._run(pace)

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        fitted = [fit(key) for key in keys]

        def select() -> dict[str, str]:
            now = self._dt(time.time())
            return {k: v for start in range(0, len(fitted), CHUNK)
                    for k, v in self.values.filter(key__in=fitted[start:start + CHUNK],
                                                   expires_at__gt=now).values_list("key", "value")}

        found = self._run(select) if keys else {}
        return [found.get(key) for key in fitted]


def _tat(raw: str) -> float:
    """A pace row's next free slot; one that isn't a number (written by something else)
    counts as none."""
    try:
        return float(raw)
    except ValueError:
        return 0.0
