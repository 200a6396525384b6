"""Subject-exclusive folds of BP4D and DISFA (PROTOCOL §4), as data.

The parts are the JAA-Net partition that ME-GraphAU and FMAE share. Subjects keep ME-GraphAU's listed order so that
exported list files line up with the official ones. occau names a fold by the part it tests (fold k tests part k);
ME-GraphAU's fold f tests part ``(3, 2, 1)[f - 1]``, so its fold1 is our fold 3 and its fold3 our fold 1.
"""

from __future__ import annotations

from dataclasses import dataclass

BP4D_PARTS: tuple[tuple[str, ...], ...] = (
    ("F001", "M007", "F018", "F008", "F002", "M004", "F010", "F009", "M012", "M001", "F016", "M014", "F023", "M008"),
    ("M011", "F003", "M010", "M002", "F005", "F022", "M018", "M017", "F013", "M016", "F020", "F011", "M013", "M005"),
    ("F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021", "F017", "M015", "F014"),
)
DISFA_PARTS: tuple[tuple[str, ...], ...] = (
    ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
)
DATASET_PARTS: dict[str, tuple[tuple[str, ...], ...]] = {"bp4d": BP4D_PARTS, "disfa": DISFA_PARTS}

BP4D_TASKS: tuple[str, ...] = ("T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8")

FOLDS: tuple[int, ...] = (1, 2, 3)
ALL = "all"  # data.fold=all: train on every subject, for a model to deploy (no test part, no validation)
MEGRAPHAU_TEST_PART: dict[int, int] = {1: 3, 2: 2, 3: 1}  # ME-GraphAU fold -> the part it tests
VAL_SUBJECT_FRACTION = 1 / 6


@dataclass(frozen=True)
class FoldSplit:
    """Subjects of one fold. ``train`` excludes ``val``; ``val`` is held out of the training parts for model
    selection, so that nothing is ever selected on the test part (UPSTREAM pitfall 7)."""

    fold: int | str  # 1..3, or "all"
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def subjects(self, split: str) -> tuple[str, ...]:
        if split == "trainval":
            return self.train + self.val
        try:
            return {"train": self.train, "val": self.val, "test": self.test}[split]
        except KeyError:
            raise ValueError(f"unknown split {split!r}; expected train, val, test or trainval") from None


def dataset_parts(dataset: str) -> tuple[tuple[str, ...], ...]:
    try:
        return DATASET_PARTS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASET_PARTS)}") from None


def all_subjects(dataset: str) -> tuple[str, ...]:
    """Every subject of the dataset, part by part in ME-GraphAU's order."""
    return tuple(s for part in dataset_parts(dataset) for s in part)


def subject_part(dataset: str, subject: str) -> int:
    """The part (1..3) a subject belongs to."""
    for k, part in enumerate(dataset_parts(dataset), start=1):
        if subject in part:
            return k
    raise ValueError(f"subject {subject!r} is in no {dataset} part; known: {', '.join(all_subjects(dataset))}")


def _check_fold(fold: int) -> None:
    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {FOLDS} (or 'all' for training on every subject), got {fold!r}")


def train_parts(fold: int) -> tuple[int, ...]:
    """The two parts a fold trains on, in ascending order (ME-GraphAU concatenates them that way)."""
    _check_fold(fold)
    return tuple(p for p in (1, 2, 3) if p != fold)


def validation_subjects(train: tuple[str, ...], fraction: float = VAL_SUBJECT_FRACTION) -> tuple[str, ...]:
    """A deterministic, evenly spread subset of the training subjects (sorted names, every ~1/fraction-th).

    Sorting interleaves F/M (BP4D) names so the subset keeps both sexes; no RNG, so it never changes.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n_val = round(len(train) * fraction)
    if n_val == 0:
        return ()
    ordered = sorted(train)
    picks = {int((i + 0.5) * len(ordered) / n_val) for i in range(n_val)}
    return tuple(s for s in train if s in {ordered[i] for i in picks})


def fold_split(dataset: str, fold: int | str, val_subject_fraction: float = VAL_SUBJECT_FRACTION) -> FoldSplit:
    """occau fold ``fold``: test part ``fold``, train on the other two minus a validation subset.

    ``fold="all"`` trains on every subject with nothing held out: there is nothing left to test on or select with,
    so it is for the model to deploy once the 3 folds have measured the recipe."""
    if fold == ALL:
        return FoldSplit(fold=ALL, train=all_subjects(dataset), val=(), test=())
    parts = dataset_parts(dataset)
    trainval = tuple(s for p in train_parts(fold) for s in parts[p - 1])
    val = validation_subjects(trainval, val_subject_fraction)
    train = tuple(s for s in trainval if s not in val)
    return FoldSplit(fold=fold, train=train, val=val, test=parts[fold - 1])


def megraphau_fold_to_occau(megraphau_fold: int) -> int:
    """ME-GraphAU fold number -> occau fold number (both named by what they test)."""
    _check_fold(megraphau_fold)
    return MEGRAPHAU_TEST_PART[megraphau_fold]


def occau_fold_to_megraphau(fold: int) -> int:
    _check_fold(fold)
    return {v: k for k, v in MEGRAPHAU_TEST_PART.items()}[fold]
