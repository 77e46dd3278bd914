"""Boards (红黑榜): standings and rankings, the village's board and closing a month, the
corrections a later board notes, statistics, public links and plates, and drawing them for
print. Callers import the submodule they need (`from points.boards import standings`)."""
