"""The states of a claim (申报) and the named sets the workflow and every query use.

`pending → (approved) → in_notice (公示) → posted`, or `rejected`; `objected` while a
villager's objection (异议) waits for a cadre; `approved` means approved by the village but
over its monthly budget, waiting for the township; `withdrawn` is taken back by staff before
it posted. The database's CHECK constraint is built from `ClaimStatus`, so a state cannot be
added here without the schema knowing it.
"""

from enum import StrEnum


class ClaimStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    IN_NOTICE = "in_notice"
    OBJECTED = "objected"
    POSTED = "posted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


# Not yet decided either way: counts against caps, may still be withdrawn, and bars a month
# from closing. (The monthly budget counts only what was decided within it: in_notice,
# objected and posted — points.budget.ISSUED_STATUSES.)
UNDECIDED: tuple[ClaimStatus, ...] = (
    ClaimStatus.PENDING,
    ClaimStatus.APPROVED,
    ClaimStatus.IN_NOTICE,
    ClaimStatus.OBJECTED,
)
# Undecided or already points: what a cap (上限) counts.
OPEN_OR_POSTED: tuple[ClaimStatus, ...] = (*UNDECIDED, ClaimStatus.POSTED)
# Staff may take back (撤回) a claim until it posts.
WITHDRAWABLE: tuple[ClaimStatus, ...] = UNDECIDED
