"""``fairgate init``: draft a contract from your own loan book, for you to review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import console, fail


def init(
    data: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Your CSV/Parquet loan book.")
    ],
    label: Annotated[str, typer.Option(help="The label column.")],
    approved: Annotated[list[str], typer.Option(help="Label value meaning approved (repeatable).")],
    protected: Annotated[list[str], typer.Option(help="Protected attribute column (repeatable).")],
    output: Annotated[Path, typer.Option(dir_okay=False, help="Where the draft goes.")],
    name: Annotated[str, typer.Option(help="The book's name in the contract.")] = "my_loan_book",
    force: Annotated[bool, typer.Option(help="Overwrite --output if it exists.")] = False,
) -> None:
    """Draft a contract (TOML, commented) from a loan book; check the book against it."""
    from fairgate.contract import ContractError, parse_contract
    from training.book_check import BookCheckError, read_book
    from training.draft_contract import DraftError, draft_book
    from training.loan_book import load_loan_book

    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it")
    try:
        frame = read_book(data)
        draft = draft_book(frame, label=label, approved=approved, protected=protected, name=name)
        contract = parse_contract(draft.text)
        # Read back as training reads it (ids and categories as text, "1" not 1), so the
        # draft is known to train as it is.
        rows = len(load_loan_book(data, contract))
    except (DraftError, ContractError, BookCheckError) as error:
        fail(error)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(draft.text, encoding="utf-8")
    for note in draft.notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    features = sum(1 for f in contract.features if not f.sensitive)
    console.print(
        f"wrote {output}: {len(contract.fields)} fields, {features} features, protected "
        f"{[p.name for p in contract.protected]}; {rows:,} rows pass its check. "
        "Review the TODOs (docs/contract.md)."
    )
