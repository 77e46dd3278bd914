"""Activities and QR check-in (签到).

`activities`: creating, listing and cancelling activities, and the activity as a scan reads
it; `codes`: the codes a poster or a screen shows (static and rotating) and which step of
them is good now; `checkin`: check-in, proxy check-in by member card (代签) and check-out;
`fraud`: the signals the attendance list shows cadres.
"""
