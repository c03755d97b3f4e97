"""Records of tasks run in a kernel reach the server whatever their size: a batch larger than the server
takes goes in parts, a record larger than it takes is cut like a long message, and nothing blocks later
records."""

from __future__ import annotations

import pytest

from .conftest import TIMEOUT, off_loop, until


@pytest.mark.parametrize("nbtasklog_config", [{"max_body_bytes": 200_000}])
async def test_a_batch_over_the_server_limit_arrives_in_parts_and_an_oversized_record_is_cut(kernel_engine, engine):
    """The kernel's buffer writes 3,000 records of ~200 bytes (one 600 kB batch) and one of 1 MB to a server
    that takes 200 kB bodies: every record arrives once, in order, the big one cut with its marker, and a
    task started after it is not held up."""
    client = await kernel_engine()

    def notebook_plugin(params, context):
        for i in range(3_000):
            context.logger.info("row %d %s", i, "x" * 180, i=i)
        context.logger.info("big " + "y" * 1_000_000)
        context.logger.info("after the big one")

    def run() -> list[int]:
        task = client.run_task(notebook_plugin)
        assert task.wait(TIMEOUT) == "SUCCESS"
        assert client.flush()
        later = client.run_task(lambda params, context: context.logger.info("later"))
        assert later.wait(TIMEOUT) == "SUCCESS"
        assert client.flush()
        return [task.id, later.id]

    task_id, later_id = await off_loop(run)
    assert (await off_loop(client.health)).database_available
    records = await off_loop(lambda: engine.logs(task_id))
    assert [r.seq for r in records] == list(range(1, 3_005))
    big = records[3_001]
    assert big.message.startswith("big yyy") and "[message cut:" in big.message
    assert big.metadata["message_original_bytes"] == 1_000_004
    assert records[3_002].message == "after the big one"
    assert [r.message for r in await off_loop(lambda: engine.logs(later_id, source="plugin"))] == ["later"]
    assert await off_loop(lambda: engine.task_info(task_id)["status"]) == "SUCCESS"


async def test_a_kernel_lists_the_servers_plugins_and_its_own(jp_serverapp, jp_fetch, jp_http_port, jp_base_url):
    """list_plugins, the widget and the CLI all ask Engine.plugins: the server's plugins (they run there) and
    the ones registered in this kernel (they run here, also when the server has one of that name)."""
    import nbtasklog
    from nbtasklog.plugins import Registry
    from nbtasklog.remote import RemoteStore, ServerConnection

    connection = ServerConnection(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token)
    kernel_registry = Registry()

    @kernel_registry.register(name="notebook_only")
    def notebook_only(params, context):
        """Defined in a notebook."""

    @kernel_registry.register(name="t_schema")
    def shadowing(params, context):
        """A notebook's own t_schema."""

    client = await off_loop(lambda: nbtasklog.Engine(store=RemoteStore(connection), registry=kernel_registry,
                                                      flush_interval=0.05, handle_signals=False))
    try:
        plugins = {p["name"]: p for p in await off_loop(client.plugins)}
        assert plugins["notebook_only"]["runs_in"] == "local"
        assert plugins["t_schema"]["runs_in"] == "local" and plugins["t_schema"]["description"] == "A notebook's own t_schema."
        assert plugins["t_sources"]["runs_in"] == "server" and plugins["dashboard_backup"]["runs_in"] == "server"
        from nbtasklog import widget as w

        view = w._Base(engine=client)
        assert {p["name"] for p in await off_loop(view._plugins)} == set(plugins)
        view.close()
    finally:
        client.close(timeout=2)



async def test_a_record_the_server_refuses_is_dropped_alone_and_counted(api, jp_serverapp, jp_http_port, jp_base_url):
    """A batch the server answers 400 is taken apart: the bad record is dropped, logged and counted, every
    other record and the task row land, and nothing is retried for ever."""
    import pyarrow as pa

    from nbtasklog.remote import RemoteStore, ServerConnection
    from nbtasklog.store.store import records_to_arrow

    from .test_rest import kernel_records, seqs, task_row

    connection = ServerConnection(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token)
    remote = RemoteStore(connection)
    records = kernel_records("kernel-bad-one", 9)
    table = records_to_arrow(records)
    sources = table.column("source").to_pylist()
    sources[4] = None
    table = table.set_column(4, "source", pa.array(sources, pa.string()))
    row = dict(task_row("kernel-bad-one"), created_at="2026-01-01T00:00:00+00:00")
    await off_loop(lambda: remote.write([row], table))
    assert remote.refused_records == 1
    assert await seqs(api, "kernel-bad-one") == [1, 2, 3, 4, 6, 7, 8, 9]


async def test_a_kernels_task_is_cancelled_from_the_server(kernel_engine, api, engine):
    """The sidebar's Cancel on a task a notebook runs in its kernel (a plugin defined there): the server
    only ingests it, so it asks the kernel in the answer to the kernel's next ingest, and the kernel stops
    it; the task ends CANCELLED everywhere with the records it made."""
    import time

    kernel = await kernel_engine()

    def plugin(params, context):
        i = 0
        while True:
            context.check_cancelled()
            context.logger.info("step %d", i)
            i += 1
            time.sleep(0.01)

    task = await off_loop(lambda: kernel.run_task(plugin))

    async def ingested():
        return (await api("tasks", task.id)).code == 200 and engine.makes_records_of(task.id)

    await until(ingested, what="the kernel's task ingested")
    answer = await api("tasks", task.id, "cancel", method="POST")
    assert answer.code == 200 and answer.json()["cancelled"] is True, answer
    assert await off_loop(task.wait, TIMEOUT) == "CANCELLED"

    async def ended_on_the_server():
        row = (await api("tasks", task.id)).json()
        return row if row["status"] == "CANCELLED" else None

    row = await until(ended_on_the_server, what="CANCELLED on the server")
    stored = await off_loop(lambda: [r.seq for r in engine.logs(task.id)])
    assert stored == list(range(1, row["record_count"] + 1)) and row["record_count"] > 2
