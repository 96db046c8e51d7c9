"""The ranked search over ``search_docs``: names first, then text.

Ranking, in tiers: the exact (normalised) name, then names it begins, then names a
typo away (the one-deletion neighbourhood in ``search_names``, ranked by edit distance;
on PostgreSQL, when that finds none, pg_trgm, most similar first), then the text of summaries, keywords
and READMEs, every word (SQLite FTS5 with bm25, PostgreSQL's stored ``tsvector`` with
``ts_rank``; names, summaries and keywords weigh above READMEs). A document appears once, in its best tier.

Each tier is its own indexed query bounded by the page asked for, so a query costs
what it returns, not what the index holds; a tier is skipped once the tiers above it
fill the page, and typos are not looked for when the name exists exactly. User text reaches FTS5 and ``to_tsquery``
only as quoted words (letters and digits), never as their query syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from tilsit.db.models import IndexRow, SearchDocRow
from tilsit.search.names import MIN_FUZZY, as_name, deletions, edit_distance
from tilsit.search.viewer import Readable

__all__ = [
    "MAX_PAGE",
    "MAX_QUERY",
    "PER_PAGE",
    "Hit",
    "InvalidQuery",
    "SearchPage",
    "search",
]

PER_PAGE = 20
# Pages beyond this are refused: a search is for finding, and deep pages cost
# every tier's query that many rows.
MAX_PAGE = 10
MAX_QUERY = 200
_MAX_WORDS = 8
_WORD = re.compile(r"\w+", re.UNICODE)
# A typo's candidates read at most (short names can have many neighbours).
_FUZZY_CANDIDATES = 500
_MAX_DISTANCE = 2
# Text matches ranked by FTS5 alone before the viewer's filter joins them instead.
_MAX_RANKED = 10_000

EXACT, PREFIX, FUZZY, TEXT = "exact", "prefix", "fuzzy", "text"
_TIERS = {EXACT: 0, PREFIX: 1, FUZZY: 2, TEXT: 3}

# SQLite's FTS5 table over search_docs (migration 0008), not a model.
_FTS = table("search_fts", column("rowid", Integer))


class InvalidQuery(ValueError):
    """A query that cannot be run: empty, too long, or a page out of range."""


@dataclass(frozen=True, slots=True)
class Hit:
    index: str
    name: str
    normalized: str
    version: str
    summary: str
    uploaded_at: datetime | None
    match: str  # "exact", "prefix", "fuzzy" or "text"


@dataclass(frozen=True, slots=True)
class SearchPage:
    query: str
    page: int
    hits: list[Hit]
    more: bool  # whether a next page has results


def check_query(query: str, page: int) -> str:
    """The query stripped, or :class:`InvalidQuery` saying what is wrong."""
    query = query.replace("\x00", " ").strip()  # NUL is no text (PostgreSQL refuses it)
    if not query:
        raise InvalidQuery("Type something to search for: the query is empty.")
    if len(query) > MAX_QUERY:
        raise InvalidQuery(f"The query is too long: at most {MAX_QUERY} characters.")
    if not 1 <= page <= MAX_PAGE:
        raise InvalidQuery(f"The page must be a number from 1 to {MAX_PAGE}.")
    return query


def words(query: str) -> list[str]:
    """The query's words (letters, digits, underscores), lower case, at most a few."""
    return [w.lower() for w in _WORD.findall(query)][:_MAX_WORDS]


def search(
    session: Session,
    query: str,
    readable: Readable,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> SearchPage:
    query = check_query(query, page)
    dialect = session.get_bind().dialect.name
    allowed = readable.condition()
    limit = page * per_page + 1
    found: dict[int, tuple[int, float, str]] = {}  # doc id -> (tier, score, normalized)

    def add(tier: str, rows: list[tuple[int, str, float]]) -> None:
        for doc_id, normalized, score in rows:
            key = (_TIERS[tier], score, normalized)
            if doc_id not in found or key < found[doc_id]:
                found[doc_id] = key

    # Tiers in rank order; once the tiers above fill the page asked for, the ones below
    # cannot reach it and are not run. A name that exists exactly is what was typed,
    # not a typo: its neighbours are not looked for.
    name = as_name(query)
    if name is not None:
        exact = _exact(session, name, allowed, limit)
        add(EXACT, exact)
        add(PREFIX, _prefix(session, name, allowed, limit, dialect))
        if len(name) >= MIN_FUZZY and not exact and len(found) < limit:
            add(FUZZY, _fuzzy(session, name, allowed, limit, dialect))
    terms = words(query)
    if terms and len(found) < limit:
        add(TEXT, _text(session, terms, allowed, limit, dialect))
    ranked = sorted(found.items(), key=lambda item: (item[1], item[0]))
    start = (page - 1) * per_page
    chosen = ranked[start : start + per_page]
    return SearchPage(query, page, _hits(session, chosen), more=len(ranked) > start + per_page)


def _hits(session: Session, chosen: list[tuple[int, tuple[int, float, str]]]) -> list[Hit]:
    if not chosen:
        return []
    tiers = {doc_id: key[0] for doc_id, key in chosen}
    rows = {
        row.id: row
        for row in session.execute(
            select(
                SearchDocRow.id,
                IndexRow.name.label("index_name"),
                SearchDocRow.name,
                SearchDocRow.normalized,
                SearchDocRow.version,
                SearchDocRow.summary,
                SearchDocRow.uploaded_at,
            )
            .join(IndexRow, IndexRow.id == SearchDocRow.index_id)
            .where(SearchDocRow.id.in_(list(tiers)))
        )
    }
    names = {rank: tier for tier, rank in _TIERS.items()}
    return [
        Hit(
            row.index_name,
            row.name,
            row.normalized,
            row.version,
            row.summary,
            row.uploaded_at,
            names[tiers[doc_id]],
        )
        for doc_id, _key in chosen
        if (row := rows.get(doc_id)) is not None  # an index deleted meanwhile
    ]


def _ids(statement: Executable, session: Session) -> list[tuple[int, str, float]]:
    return [(int(a), str(b), float(c)) for a, b, c in session.execute(statement)]


def _exact(
    session: Session, name: str, allowed: ColumnElement[bool], limit: int
) -> list[tuple[int, str, float]]:
    statement: Executable = (
        select(SearchDocRow.id, SearchDocRow.normalized, literal_column("0.0"))
        .where(SearchDocRow.normalized == name, allowed)
        .limit(limit)
    )
    return _ids(statement, session)


def _prefix(
    session: Session, name: str, allowed: ColumnElement[bool], limit: int, dialect: str
) -> list[tuple[int, str, float]]:
    if dialect == "sqlite":
        # A range on the name's B-tree index: SQLite compares bytes.
        upper = name[:-1] + chr(ord(name[-1]) + 1)
        begins = (SearchDocRow.normalized > name) & (SearchDocRow.normalized < upper)
    else:
        # Names hold no LIKE wildcard (as_name); a text_pattern_ops index serves it.
        begins = SearchDocRow.normalized.like(name + "%") & (SearchDocRow.normalized != name)
    length = func.length(SearchDocRow.normalized)
    statement = (
        select(SearchDocRow.id, SearchDocRow.normalized, length)
        .where(begins, allowed)
        .order_by(length, SearchDocRow.normalized)
        .limit(limit)
    )
    return _ids(statement, session)


def _fuzzy(
    session: Session, name: str, allowed: ColumnElement[bool], limit: int, dialect: str
) -> list[tuple[int, str, float]]:
    close = _neighbours(session, name, allowed, limit)
    if close or dialect == "sqlite":
        return close
    # PostgreSQL, when no name is one letter away: candidates through the trigram GIN
    # index (% is similarity above pg_trgm's threshold, 0.3), most similar first.
    similarity: ColumnElement[float] = func.similarity(SearchDocRow.normalized, name)
    statement = (
        select(SearchDocRow.id, SearchDocRow.normalized, -similarity)
        .where(SearchDocRow.normalized.op("%")(name), SearchDocRow.normalized != name, allowed)
        .order_by(similarity.desc(), SearchDocRow.normalized)
        .limit(limit)
    )
    return _ids(statement, session)


def _neighbours(
    session: Session, name: str, allowed: ColumnElement[bool], limit: int
) -> list[tuple[int, str, float]]:
    """Names a typo away, by exact lookups in the one-deletion neighbourhood (``search_names``),
    ranked by edit distance: a letter dropped, added, changed or two swapped."""
    variants = sorted(deletions(name))
    names = [
        n
        for (n,) in session.execute(
            text(
                "SELECT DISTINCT normalized FROM search_names WHERE variant IN :variants"
                " LIMIT :most"
            ).bindparams(bindparam("variants", expanding=True)),
            {"variants": variants, "most": _FUZZY_CANDIDATES},
        )
    ]
    distance = {n: edit_distance(name, n) for n in names if n != name}
    close = {n: d for n, d in distance.items() if d <= _MAX_DISTANCE}
    if not close:
        return []
    rows = session.execute(
        select(SearchDocRow.id, SearchDocRow.normalized).where(
            SearchDocRow.normalized.in_(sorted(close)), allowed
        )
    ).all()
    ranked = sorted((close[n], n, int(i)) for i, n in rows)[:limit]
    return [(doc_id, n, float(d)) for d, n, doc_id in ranked]


def _text(
    session: Session, terms: list[str], allowed: ColumnElement[bool], limit: int, dialect: str
) -> list[tuple[int, str, float]]:
    if dialect == "sqlite":
        # Each word quoted (a word holds no quote): FTS5 syntax in the query (NEAR, OR,
        # -, *, column filters) stays text. Whole words: a prefix of a name is the
        # name tiers' job, and a prefix of a word matches too much to rank fast.
        match = " ".join(f'"{w}"' for w in terms)
        # The best matches first from FTS5 itself (its configured bm25 rank), then only
        # those the viewer may read; more are read while too few of them are readable.
        read = max(limit * 4, 200)
        while True:
            ranked = session.execute(
                text(
                    "SELECT rowid, rank FROM search_fts WHERE search_fts MATCH :match"
                    " ORDER BY rank LIMIT :read"
                ),
                {"match": match, "read": read},
            ).all()
            rank = {int(row_id): float(score) for row_id, score in ranked}
            readable = session.execute(
                select(SearchDocRow.id, SearchDocRow.normalized).where(
                    SearchDocRow.id.in_(list(rank)), allowed
                )
            ).all()
            if len(readable) >= limit or len(ranked) < read:
                found = sorted((rank[int(i)], n, int(i)) for i, n in readable)[:limit]
                return [(doc_id, n, score) for score, n, doc_id in found]
            read *= 8
            if read > _MAX_RANKED:
                break
        # A viewer who may read few of very many matches: rank them all in one join.
        bm25: ColumnElement[float] = literal_column("search_fts.rank")
        statement = (
            select(SearchDocRow.id, SearchDocRow.normalized, bm25)
            .select_from(SearchDocRow)
            .join(_FTS, _FTS.c.rowid == SearchDocRow.id)
            .where(text("search_fts MATCH :match").bindparams(match=match), allowed)
            .order_by(bm25, SearchDocRow.normalized)
            .limit(limit)
        )
        return _ids(statement, session)
    # Quoted lexemes joined by &: to_tsquery syntax in the query stays text.
    expression = " & ".join(f"'{w}'" for w in terms)
    tsquery = func.to_tsquery(literal_column("'english'::regconfig"), expression)
    document = SearchDocRow.__table__.c.document
    pg_rank: ColumnElement[float] = func.ts_rank(document, tsquery)
    statement = (
        select(SearchDocRow.id, SearchDocRow.normalized, -pg_rank)
        .where(document.op("@@")(tsquery), allowed)
        .order_by(pg_rank.desc(), SearchDocRow.normalized)
        .limit(limit)
    )
    return _ids(statement, session)
