"""The web portal: employees' own pages and the admin's view, on aiohttp with Jinja2 templates."""
