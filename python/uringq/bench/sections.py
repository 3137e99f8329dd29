"""The sections of the report: their titles, units and ratio columns, and ``--sections`` names."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AIOF_FILES",
    "AIOF_LINES",
    "AIOF_SEQ",
    "AIOF_WHOLE",
    "CHOICES",
    "DEFAULT_CHOICES",
    "DIRECT",
    "SECTIONS",
    "SEQ_READ",
    "SEQ_WRITE",
    "W1",
    "W2_READ",
    "W2_WRITE",
    "Section",
]

W1 = "W1: 4 KiB random reads, page cache warm"
DIRECT = "O_DIRECT 4 KiB random reads"
SEQ_READ = "sequential 128 KiB reads, page cache warm"
SEQ_WRITE = "sequential 128 KiB buffered writes (new file)"
W2_READ = "W2: many small files (4-12 KiB) read whole, page cache warm"
W2_WRITE = "W2 writes: small files (4-12 KiB) created and written whole"
AIOF_FILES = "aiofiles-style: async with open(p, 'rb') as f: await f.read(), W2 files, 64 tasks"
AIOF_SEQ = "aiofiles-style: sequential await f.read(4096), one task"
AIOF_LINES = "aiofiles-style: async for line in f (text file), one task"
AIOF_WHOLE = "aiofiles-style: await f.read() of a whole large cached file"


@dataclass(frozen=True)
class Section:
    """How a section is shown: its unit and which ratio columns it has.

    Every section has a reference row (``ratio_pread`` in the JSON: the ratio to it,
    headed ``reference``); ``ceiling`` heads ``ratio_c`` where the section has C ceiling
    rows, ``ceiling_reuse`` heads ``ratio_c_reuse`` (W2: against the C rows that reuse
    their buffers instead of keeping results); ``bare`` shows ``ratio_bare`` (asyncio
    paths against the bare future round trip of their loop); ``aiofiles`` shows
    ``ratio_aiofiles`` (the same code on aiofiles).
    """

    title: str
    unit: str = "ops/s"
    reference: str = "x pread"
    ceiling: str | None = None
    ceiling_reuse: str | None = None
    bare: bool = False
    aiofiles: bool = False


SECTIONS: dict[str, Section] = {
    s.title: s
    for s in (
        Section(W1, ceiling="x C", bare=True),
        Section(DIRECT, reference="x preadv"),
        Section(SEQ_READ),
        Section(SEQ_WRITE, reference="x pwrite"),
        Section(
            W2_READ,
            unit="files/s",
            reference="x open().read()",
            ceiling="x C chain",
            ceiling_reuse="x C reuse",
        ),
        Section(W2_WRITE, unit="files/s", reference="x open().write()"),
        Section(AIOF_FILES, unit="files/s", reference="x builtin", aiofiles=True),
        Section(AIOF_SEQ, unit="reads/s", reference="x builtin", aiofiles=True),
        Section(AIOF_LINES, unit="lines/s", reference="x builtin", aiofiles=True),
        Section(AIOF_WHOLE, unit="reads/s", reference="x builtin", aiofiles=True),
    )
}

# ``--sections`` names and the sections each one runs, in report order.
CHOICES: dict[str, tuple[str, ...]] = {
    "w1": (W1,),
    "w2": (W2_READ, W2_WRITE),
    "aiofiles": (AIOF_FILES, AIOF_SEQ, AIOF_LINES, AIOF_WHOLE),
    "direct": (DIRECT,),
    "seq": (SEQ_READ, SEQ_WRITE),
}
DEFAULT_CHOICES = ("w1", "w2", "aiofiles")


def section(title: str) -> Section:
    """The section of ``title`` (an unknown title gets the plain defaults)."""
    return SECTIONS.get(title) or Section(title)
