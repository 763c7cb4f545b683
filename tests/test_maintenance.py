import threading
from datetime import date

from flowscope.lake import Lake, LakeWriter
from flowscope.lake.maintenance import compact, drop_before
from flowscope.query import open_lake
from helpers import HOUR_NS, flows


def totals(lake_dir):
    with open_lake(lake_dir) as con:
        return con.execute("SELECT count(*), count(DISTINCT bytes), sum(bytes) FROM flows").fetchone()


def test_compaction_merges_small_files_without_changing_the_data(lake_dir):
    for i in range(5):
        with LakeWriter(lake_dir) as writer:
            writer.write(flows(200, first_id=i * 200, spacing_ns=HOUR_NS // 100))
    lake = Lake.at(lake_dir)
    before = totals(lake_dir)
    assert len(lake.files("flows")) == 10
    result = compact(lake)
    assert (result.files_before, result.files_after, result.partitions) == (10, 2, 2)
    assert totals(lake_dir) == before
    assert compact(lake).partitions == 0  # nothing left to do


def test_queries_never_see_duplicates_while_compacting(lake_dir):
    for i in range(8):
        with LakeWriter(lake_dir) as writer:
            writer.write(flows(500, first_id=i * 500))
    expected = totals(lake_dir)
    seen = []
    stop = threading.Event()

    def query_loop():
        while not stop.is_set():
            seen.append(totals(lake_dir))

    reader = threading.Thread(target=query_loop)
    reader.start()
    compact(Lake.at(lake_dir))
    stop.set()
    reader.join()
    assert seen and all(s == expected for s in seen)


def test_compaction_can_apply_a_reduction(lake_dir):
    for i in range(3):
        with LakeWriter(lake_dir) as writer:
            writer.write(flows(10, first_id=i * 10))
    compact(Lake.at(lake_dir), reduce=lambda table: table.slice(0, 5))
    assert totals(lake_dir)[0] == 5


def test_retention_drops_whole_old_days(lake_dir):
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(72, spacing_ns=HOUR_NS))
    removed = drop_before(Lake.at(lake_dir), date(2024, 5, 3))
    assert [p.name for p in removed] == ["date=2024-05-01", "date=2024-05-02"]
    assert totals(lake_dir)[0] == 24
