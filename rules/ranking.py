"""Competition ranking (标准竞赛排名) as boards and village statistics print it: ties share a
rank and the next rank skips (1, 2, 2, 4)."""

from collections.abc import Sequence


def competition_ranks(scores: Sequence[float]) -> list[int]:
    """The rank of each score of a list already ordered best first."""
    ranks: list[int] = []
    previous: float | None = None
    rank = 0
    for position, score in enumerate(scores, 1):
        if score != previous:
            rank, previous = position, score
        ranks.append(rank)
    return ranks


def rank_among(score: float, scores: Sequence[float]) -> int:
    """Where a score would stand among ranked scores it is not listed with."""
    return 1 + sum(1 for other in scores if other > score)
