"""lm-eval task helpers: turn suites/core cases into four-way multiple choice."""


def _choices(value: float, step: float) -> list[str]:
    options = sorted({value, value + step, value - step, value + 2 * step})
    return [f"{o:g}" for o in options]


def _mc(docs, field: str, step: float):  # type: ignore[no-untyped-def]
    def convert(doc):  # type: ignore[no-untyped-def]
        value = float(doc["expected"][field])
        choices = _choices(value, step)
        return {
            "id": doc["id"],
            "question": doc["input"]["prompt"],
            "choices": choices,
            "gold": choices.index(f"{value:g}"),
        }

    return docs.map(convert, remove_columns=docs.column_names)


def process_math(docs):  # type: ignore[no-untyped-def]
    return _mc(docs, "answer", 1.0)


def process_division(docs):  # type: ignore[no-untyped-def]
    return _mc(docs, "value", 0.1)
