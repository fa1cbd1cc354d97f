"""Text mutations for fuzzing the game-file parsers with hypothesis."""

from hypothesis import strategies as st


def mutate(data, text: str, fragments: list[str]) -> str:
    """Deletes, inserts or replaces characters of ``text`` 1 to 4 times, drawing from ``data``."""
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        fragment = data.draw(st.sampled_from(fragments))
        if edit == "delete":
            text = text[:position] + text[position + 1:]
        elif edit == "insert":
            text = text[:position] + fragment + text[position:]
        else:
            text = text[:position] + fragment + text[position + 1:]
    return text
