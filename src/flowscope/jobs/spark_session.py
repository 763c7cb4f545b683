"""A Spark session for flowscope's jobs: the optional dependency checked, local runs kept on loopback.

pyspark is an optional extra (``pip install 'flowscope[spark]'``): its PyPI package is a 456 MB
source build, so the default install stays without it. Under ``spark-submit`` the master and
every setting come from the submit command; ``--master`` (or local runs) sets them here. A local
session binds to 127.0.0.1 and runs without the web UI (nothing listens beyond loopback); it
starts in about 5 s and takes about 1.4 GB (docs/SCALING.md).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'flowscope[spark]' (pyspark) and Java 17 (Debian: apt-get install default-jre-headless)"


def require_spark() -> None:
    """Fail with one line when pyspark or Java is missing."""
    if importlib.util.find_spec("pyspark") is None:
        raise FlowscopeError(f"Spark jobs need pyspark, which is not installed: {INSTALL_HINT}")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise FlowscopeError(f"Spark needs a Java runtime, and none was found: {INSTALL_HINT}")


def spark_session(app: str, master: str | None = None, settings: dict[str, str] | None = None) -> SparkSession:
    """The running session (``spark-submit``) or a new one; ``master`` like ``local[2]``, ``yarn``,
    ``k8s://https://HOST:443`` or ``spark://HOST:7077``."""
    require_spark()
    local = master is None or master.startswith("local")
    # The Python workers must run this interpreter (the one with flowscope), not whatever "python3" is.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # pyspark warns on every pandas UDF about pandas versions it has not certified; flowscope passes Arrow only
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pyspark\..*")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    log_config = Path(__file__).with_name("log4j2.properties")
    defaults = {
        "spark.ui.showConsoleProgress": "false",
        # only when flowscope starts the JVM (spark-submit has started it already): errors only, no banner
        "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile={log_config.as_uri()}",
    }
    if local:
        defaults |= {
            "spark.ui.enabled": "false",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
        }
    for key, value in (defaults | (settings or {})).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: the one line says why, --debug shows the rest
        raise FlowscopeError(f"cannot start Spark ({master or 'from spark-submit'}): {exc}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session
