"""The monitor's web pages (status pages under /status), server-rendered with Jinja2."""
