"""One progress bar for long loops: items/s and ETA on stderr."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(
    total: int, description: str, *, disable: bool = False, unit: str = "pair"
) -> tqdm:
    return tqdm(
        total=total, desc=description, unit=unit, disable=disable, dynamic_ncols=True, smoothing=0.1
    )
