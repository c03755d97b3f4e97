"""Who ran it: tasks record the user who started them, listings filter by user, and other users' tasks go
through the authorizer (resource nbtasklog.tasks.others) on every face: REST, export, both WebSockets,
cleanup, ingest. Users are named by the NamedUsers identity provider (a header), as a hub names them."""

from __future__ import annotations

import pytest
from authorizers import USER_HEADER, NamedUsers, OwnTasksOnly, ReadOthersTasks

from nbtasklog.runner import os_username

from .conftest import assert_error, off_loop, read_json, read_until, until


def as_user(name: str) -> dict[str, str]:
    return {USER_HEADER: name}


@pytest.fixture
def user_api(api):
    """`await user_api(name, *path, ...)`: api() as that user."""

    async def call(name: str, *path: str, **kwargs):
        return await api(*path, headers=as_user(name), **kwargs)

    return call


@pytest.fixture
def started_by(user_api):
    """`await started_by(name, plugin, params)`: a task that user started, ended (unless `wait=False`)."""

    async def start(name: str, plugin: str = "t_schema", params: dict | None = None, wait: bool = True) -> str:
        response = await user_api(name, "tasks", method="POST", body={"plugin": plugin, "params": params or {"x": 1}})
        assert response.code == 201, response
        assert response.json()["username"] == name
        task_id = response.json()["id"]

        async def ended():
            return (await user_api(name, "tasks", task_id)).json()["status"] not in ("PENDING", "RUNNING")

        if wait:
            await until(ended, what=f"{name}'s task {task_id} to end")
        return task_id

    return start


async def _status(user_api, task_id: str) -> bool:
    return (await user_api("alice", "tasks", task_id)).json()["status"] not in ("PENDING", "RUNNING")


def ids(response) -> list[str]:
    assert response.code == 200, response
    return [t["id"] for t in response.json()["tasks"]]


async def test_behind_jupyters_own_token_login_tasks_are_the_servers_os_user(api, start, finished):
    """jupyter-server's token login knows no users (each request is a new "Anonymous"): a task is recorded
    as the user the server runs as, the same for every request, and GET tasks says so."""
    first = (await start("t_schema", {"x": 1}))["id"]
    second = (await start("t_schema", {"x": 2}))["id"]
    me = os_username()
    assert me
    for task_id in (first, second):
        assert (await finished(task_id))["username"] == me
    page = (await api("tasks", params={"user": me})).json()
    assert page["user"] == me and page["others_visible"] is True
    assert [t["id"] for t in page["tasks"]] == [second, first]
    assert ids(await api("tasks", params={"user": "somebody-else"})) == []


@pytest.mark.parametrize("server_config", [{"identity_provider_class": NamedUsers}])
async def test_tasks_record_who_started_them_and_list_by_user(user_api, started_by):
    alice = await started_by("alice")
    bob = await started_by("bob")
    assert ids(await user_api("alice", "tasks", params={"user": "alice"})) == [alice]
    assert ids(await user_api("alice", "tasks", params={"user": "bob"})) == [bob]
    page = (await user_api("bob", "tasks")).json()
    assert [t["id"] for t in page["tasks"]] == [bob, alice]  # the default authorizer lets everyone see all
    assert page["user"] == "bob" and page["others_visible"] is True
    assert [t["username"] for t in page["tasks"]] == ["bob", "alice"]
    assert (await user_api("bob", "tasks", alice)).json()["username"] == "alice"


@pytest.mark.parametrize("server_config", [{"identity_provider_class": NamedUsers, "authorizer_class": OwnTasksOnly}])
async def test_without_permission_on_others_tasks_a_user_sees_and_touches_only_their_own(user_api, started_by, engine):
    alice = await started_by("alice")
    bob = await started_by("bob")
    page = (await user_api("bob", "tasks")).json()
    assert [t["id"] for t in page["tasks"]] == [bob] and page["others_visible"] is False and page["user"] == "bob"
    assert ids(await user_api("bob", "tasks", params={"user": "bob"})) == [bob]
    assert_error(await user_api("bob", "tasks", params={"user": "alice"}), 403, "nbtasklog.tasks.others")
    for path in [(alice,), (alice, "logs"), (alice, "logs", "stats"), (alice, "logs", "export")]:
        assert_error(await user_api("bob", "tasks", *path), 403, "another user", "nbtasklog.tasks.others")
    assert_error(await user_api("bob", "tasks", alice, "cancel", method="POST"), 403, "another user")
    assert_error(await user_api("bob", "tasks", alice, method="DELETE"), 403, "another user")
    assert (await user_api("bob", "tasks", bob, "logs")).json()["records"]  # their own: as before
    # An unknown task is still a 404, not a 403.
    assert_error(await user_api("bob", "tasks", "nosuchtask"), 404)
    # Cleanup deletes only their own; another user's name is refused.
    assert_error(await user_api("bob", "cleanup", method="POST", body={"older_than": "0s", "user": "alice"}), 403)
    cleaned = await user_api("bob", "cleanup", method="POST", body={"older_than": "0s"})
    assert cleaned.code == 200 and cleaned.json()["deleted"] == [bob]
    assert (await user_api("admin", "tasks", alice)).code == 200
    # The admin may do everything: delete alice's task.
    assert (await user_api("admin", "tasks", alice, method="DELETE")).code == 204
    assert ids(await user_api("admin", "tasks")) == []


@pytest.mark.parametrize("server_config", [{"identity_provider_class": NamedUsers, "authorizer_class": OwnTasksOnly}])
async def test_the_sockets_keep_other_users_tasks_from_those_not_allowed(user_api, started_by, sockets):
    alice = await started_by("alice")
    refused = await sockets("tasks", alice, "logs", "stream", headers=as_user("bob"))
    assert await read_json(refused) is None
    assert refused.close_code == 4403 and "another user" in refused.close_reason
    allowed = await sockets("tasks", alice, "logs", "stream", headers=as_user("alice"))
    messages = await read_until(allowed, lambda m: m["type"] == "end")
    assert any(m["type"] == "records" and m["records"] for m in messages)
    # The task list: bob hears his own task, never alice's started meanwhile.
    listening = await sockets("tasks", "stream", headers=as_user("bob"))
    alices = await started_by("alice", wait=False)
    bobs = await started_by("bob", wait=False)
    heard = await read_until(listening, lambda m: m.get("task", {}).get("id") == bobs
                             and m["task"]["status"] == "SUCCESS")
    assert {m["task"]["id"] for m in heard if m["type"] == "task"} == {bobs}
    assert alices not in str(heard)


@pytest.mark.parametrize("server_config", [{"identity_provider_class": NamedUsers, "authorizer_class": ReadOthersTasks}])
async def test_read_permission_alone_reads_others_tasks_but_does_not_cancel_or_delete_them(
        user_api, started_by, gate):
    name, event = gate()
    running = await started_by("alice", "t_sources", {"n": 20, "hold": 5, "gate": name}, wait=False)
    page = (await user_api("bob", "tasks")).json()
    assert running in [t["id"] for t in page["tasks"]] and page["others_visible"] is True
    assert (await user_api("bob", "tasks", running, "logs")).code == 200
    assert_error(await user_api("bob", "tasks", running, "cancel", method="POST"), 403, "cancel or delete")
    assert (await user_api("bob", "tasks", running)).json()["status"] in ("PENDING", "RUNNING")
    cancelled = await user_api("alice", "tasks", running, "cancel", method="POST")
    assert cancelled.code == 200 and cancelled.json()["cancelled"] is True
    await until(lambda: _status(user_api, running), what="the cancel")
    assert (await user_api("alice", "tasks", running)).json()["status"] == "CANCELLED"
    assert_error(await user_api("bob", "tasks", running, method="DELETE"), 403, "cancel or delete")
    cleaned = await user_api("bob", "cleanup", method="POST", body={"older_than": "0s"})
    assert cleaned.json()["deleted"] == []
    assert (await user_api("alice", "tasks", running, method="DELETE")).code == 204


@pytest.mark.parametrize("server_config", [{"identity_provider_class": NamedUsers}])
async def test_a_kernels_task_is_recorded_as_the_user_its_server_knows_not_as_the_kernel_says(
        kernel_engine, api, finished):
    """The kernel's requests carry no name here, so the server knows them as alice (NamedUsers' default),
    and the kernel's engine asks the server whom it is. A kernel that claims another user in the rows it
    sends is recorded as alice all the same."""
    kernel = await kernel_engine()
    assert await off_loop(lambda: kernel.username) == "alice"
    task = await off_loop(lambda: kernel.run_task(lambda params, context: context.logger.info("in the kernel"),
                                                  username="mallory"))
    assert await off_loop(task.wait, 15) == "SUCCESS"

    async def recorded():
        row = (await api("tasks", task.id)).json()
        return row if row.get("status") == "SUCCESS" else None

    row = await until(recorded, what="the kernel's task stored")
    assert row["username"] == "alice"
    assert ids(await api("tasks", params={"user": "alice"})) == [task.id]
    assert ids(await api("tasks", params={"user": "mallory"})) == []
