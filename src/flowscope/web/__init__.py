"""``flowscope serve``: the web console (pages under ``static/``, the JSON API in ``api.py``, its SQL in
``queries.py``, the app and its token check in ``app.py``)."""
