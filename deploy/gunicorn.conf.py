"""gunicorn settings for Village Points behind nginx (deploy/nginx/village-points.conf).

    gunicorn -c deploy/gunicorn.conf.py wsgi:app      (deploy/systemd/village-points.service)

Options given on the command line win over these; GUNICORN_WORKERS in the settings file
sets the number of workers."""

import multiprocessing
import os

# nginx on this machine is the only client; the upstream address in the nginx site.
bind = "127.0.0.1:8000"
# Sync workers: requests are short database work. Two per core plus one is gunicorn's
# rule of thumb; every worker holds its own database connections (size PostgreSQL's
# max_connections for all workers of all app servers).
workers = int(os.environ.get("GUNICORN_WORKERS") or multiprocessing.cpu_count() * 2 + 1)
timeout = 60  # board.pdf at A3 and settlement spreadsheets take seconds, not minutes
graceful_timeout = 30
keepalive = 5  # nginx keeps connections to the upstream open (keepalive 16)
# A worker is replaced after this many requests (jittered so they do not all restart at
# once): memory a long-lived worker collects (image decoding, PDF fonts) is given back.
max_requests = 2000
max_requests_jitter = 200
# nginx's X-Forwarded-Proto is believed from here only: url_for(_external) says https.
# (The client's address comes from X-Forwarded-For through the app's TRUSTED_PROXIES.)
forwarded_allow_ips = "127.0.0.1"

# Logs go to files rotated by deploy/logrotate/village-points (SIGUSR1 reopens them).
# capture_output: the app's own warnings and errors (stderr) land in the error log too.
accesslog = "/var/log/village-points/access.log"
errorlog = "/var/log/village-points/error.log"
capture_output = True
loglevel = "info"
# The path without its query string (a query may carry a token); the client's address
# as nginx passed it.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%({x-forwarded-for}i)s"'
