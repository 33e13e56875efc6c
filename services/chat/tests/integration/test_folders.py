"""Folders: create (client or server ids), nest, rename, reorder, put chats in and out (a chat
may sit in several folders; its folder_id is the first), delete (chats leave, subfolders move
up); every change is a `folder.changed` event; another user's folder is always 404."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from .conftest import User, data, error, outbox


async def new_folder(user: User, **body: Any) -> dict[str, Any]:
    folder: dict[str, Any] = data(await user.post("/api/v1/folders", json=body), 201)
    return folder


async def folder_ids(user: User) -> list[str]:
    return [f["id"] for f in data(await user.get("/api/v1/folders"))["folders"]]


async def chats_in(user: User, folder_id: str) -> list[str]:
    listed = data(await user.get("/api/v1/chats", params={"folder_id": folder_id}))
    return [c["id"] for c in listed["chats"]]


async def test_create_with_client_or_server_ids_nest_and_rename(alice: User) -> None:
    work = await new_folder(alice, id="folder_1699999999999", title="  Work ", color="#ff0000")
    assert (work["id"], work["title"], work["color"]) == ("folder_1699999999999", "Work", "#ff0000")
    assert (work["parent_id"], work["is_collapsed"], work["version"]) == (None, False, 1)
    again = await alice.post(
        "/api/v1/folders", json={"id": "folder_1699999999999", "title": "Work"}
    )
    assert again.status_code == 200  # a retried create returns the folder it made
    assert data(again) == work

    home = await new_folder(alice, title="Home")
    assert home["id"] not in ("", work["id"])
    assert home["sort_order"] > work["sort_order"]  # new folders go after the last one
    reports = await new_folder(alice, title="Reports", parent_id=work["id"])
    assert reports["parent_id"] == work["id"]
    assert await folder_ids(alice) == [work["id"], home["id"], reports["id"]]

    renamed = data(
        await alice.patch(
            f"/api/v1/folders/{home['id']}", json={"title": "Family", "is_collapsed": True}
        )
    )
    assert (renamed["title"], renamed["is_collapsed"], renamed["version"]) == ("Family", True, 2)
    assert data(await alice.get(f"/api/v1/folders/{home['id']}")) == renamed
    moved = data(
        await alice.patch(f"/api/v1/folders/{reports['id']}", json={"parent_id": home["id"]})
    )
    assert moved["parent_id"] == home["id"]
    top = data(await alice.patch(f"/api/v1/folders/{reports['id']}", json={"parent_id": None}))
    assert top["parent_id"] is None


async def test_a_folder_cannot_end_up_inside_itself(alice: User) -> None:
    a = await new_folder(alice, title="A")
    b = await new_folder(alice, title="B", parent_id=a["id"])
    c = await new_folder(alice, title="C", parent_id=b["id"])
    for folder, parent in [(a, a), (a, b), (a, c), (b, c)]:
        response = await alice.patch(
            f"/api/v1/folders/{folder['id']}", json={"parent_id": parent["id"]}
        )
        assert error(response)[:2] == (400, "VALIDATION_ERROR"), (folder["title"], parent["title"])
    assert [f["parent_id"] for f in data(await alice.get("/api/v1/folders"))["folders"]] == [
        None,
        a["id"],
        b["id"],
    ]


async def send(user: User, method: str, url: str, body: bytes) -> httpx.Response:
    """A request with exactly these JSON bytes, as a client sends them."""
    return await user.client.request(
        method, url, content=body, headers={**user.headers, "Content-Type": "application/json"}
    )


async def test_a_chat_may_sit_in_several_folders(alice: User, app: FastAPI) -> None:
    a = await new_folder(alice, id="fa", title="A")
    b = await new_folder(alice, id="fb", title="B")
    chat = await alice.new_chat(id="c1", title="Budget")
    other = await alice.new_chat(title="Elsewhere")
    assert await chats_in(alice, a["id"]) == []  # read (and cached) before the change
    assert (chat["folder_id"], chat["folder_ids"]) == (None, [])

    added = data(await send(alice, "POST", "/api/v1/folders/fa/chats", b'{"chat_id": "c1"}'))
    assert (added["folder_id"], added["folder_ids"]) == ("fa", ["fa"])
    assert await chats_in(alice, a["id"]) == [chat["id"]]

    # big-AGI's folders list chat ids: adding to a second folder keeps the first
    both = data(await send(alice, "POST", "/api/v1/folders/fb/chats", b'{"chat_id": "c1"}'))
    assert (both["folder_id"], both["folder_ids"]) == ("fa", ["fa", "fb"])
    assert await chats_in(alice, a["id"]) == [chat["id"]]
    assert await chats_in(alice, b["id"]) == [chat["id"]]
    read = data(await alice.get("/api/v1/chats/c1"))
    assert (read["folder_id"], read["folder_ids"]) == ("fa", ["fa", "fb"])
    hits = data(await alice.get("/api/v1/search", params={"q": "budget", "folder_id": "fb"}))
    assert [h["conversation_id"] for h in hits["results"]] == ["c1"]
    again = data(await send(alice, "POST", "/api/v1/folders/fb/chats", b'{"chat_id": "c1"}'))
    assert (again["folder_ids"], again["version"]) == (["fa", "fb"], both["version"])

    # out of the first: the next one becomes folder_id
    out = data(await send(alice, "DELETE", "/api/v1/folders/fa/chats/c1", b""))
    assert (out["folder_id"], out["folder_ids"]) == ("fb", ["fb"])
    assert await chats_in(alice, a["id"]) == []
    assert await chats_in(alice, b["id"]) == [chat["id"]]
    not_there = await alice.delete("/api/v1/folders/fa/chats/c1")
    assert error(not_there)[:2] == (404, "NOT_FOUND")

    # a client that knows one folder moves the chat: it is then in that folder only
    data(await send(alice, "POST", "/api/v1/folders/fa/chats", b'{"chat_id": "c1"}'))
    assert data(await alice.get("/api/v1/chats/c1"))["folder_ids"] == ["fb", "fa"]
    same = data(await send(alice, "PATCH", "/api/v1/chats/c1", b'{"folder_id": "fb"}'))
    assert same["folder_ids"] == ["fb", "fa"]  # what it read back: nothing moves
    moved = data(await send(alice, "PATCH", "/api/v1/chats/c1", b'{"folder_id": "fa"}'))
    assert (moved["folder_id"], moved["folder_ids"]) == ("fa", ["fa"])
    assert await chats_in(alice, b["id"]) == []
    released = data(await send(alice, "PATCH", "/api/v1/chats/c1", b'{"folder_id": null}'))
    assert (released["folder_id"], released["folder_ids"]) == (None, [])
    assert await chats_in(alice, a["id"]) == []
    assert data(await alice.get(f"/api/v1/chats/{other['id']}"))["folder_ids"] == []

    events = [
        e[3]
        for e in await outbox(app, alice.id)
        if e[1] == "conversation.changed" and e[3]["conversation_id"] == "c1"
    ]
    assert [(e["folder_id"], e["folder_ids"]) for e in events] == [
        (None, []),
        ("fa", ["fa"]),
        ("fa", ["fa", "fb"]),
        ("fb", ["fb"]),
        ("fb", ["fb", "fa"]),
        ("fa", ["fa"]),
        (None, []),
    ]

    for response in [
        await send(alice, "POST", "/api/v1/folders/fa/chats", b'{"chat_id": "no-such-chat"}'),
        await send(alice, "POST", "/api/v1/folders/no-such-folder/chats", b'{"chat_id": "c1"}'),
        await alice.delete("/api/v1/folders/fa/chats/no-such-chat"),
    ]:
        assert error(response)[:2] == (404, "NOT_FOUND"), response.request.url


async def test_a_chat_created_in_a_folder_and_a_deleted_folder_it_shared(alice: User) -> None:
    a = await new_folder(alice, id="fa", title="A")
    await new_folder(alice, id="fb", title="B")
    created = data(
        await send(
            alice, "POST", "/api/v1/chats", b'{"id": "c1", "title": "Plans", "folder_id": "fa"}'
        ),
        201,
    )
    assert (created["chat"]["folder_id"], created["chat"]["folder_ids"]) == ("fa", ["fa"])
    assert await chats_in(alice, a["id"]) == ["c1"]
    data(await send(alice, "POST", "/api/v1/folders/fb/chats", b'{"chat_id": "c1"}'))
    data(await alice.delete("/api/v1/folders/fa"))
    kept = data(await alice.get("/api/v1/chats/c1"))
    assert (kept["folder_id"], kept["folder_ids"]) == ("fb", ["fb"])
    assert await chats_in(alice, "fb") == ["c1"]
    listed = data(await alice.get("/api/v1/chats"))["chats"]
    assert [(c["id"], c["folder_ids"]) for c in listed] == [("c1", ["fb"])]


async def test_reorder_puts_the_listed_folders_first(alice: User) -> None:
    a, b, c = [(await new_folder(alice, title=t))["id"] for t in "ABC"]
    reordered = data(await alice.post("/api/v1/folders/reorder", json={"folder_ids": [c, a]}))
    assert [(f["id"], f["sort_order"]) for f in reordered["folders"]] == [(c, 0), (a, 1), (b, 2)]
    assert await folder_ids(alice) == [c, a, b]

    for body, status in [
        ({"folder_ids": [a, a]}, 400),
        ({"folder_ids": []}, 400),
        ({"folder_ids": [a, "no-such-folder"]}, 404),
        ({}, 400),
    ]:
        assert error(await alice.post("/api/v1/folders/reorder", json=body))[0] == status, body
    assert await folder_ids(alice) == [c, a, b]


async def test_delete_releases_its_chats_and_moves_subfolders_up(alice: User) -> None:
    top = await new_folder(alice, title="Top")
    doomed = await new_folder(alice, title="Doomed", parent_id=top["id"])
    child = await new_folder(alice, title="Child", parent_id=doomed["id"])
    chat = await alice.new_chat(title="Kept", folder_id=doomed["id"])
    assert await chats_in(alice, doomed["id"]) == [chat["id"]]
    assert data(await alice.get(f"/api/v1/chats/{chat['id']}"))["folder_id"] == doomed["id"]

    assert data(await alice.delete(f"/api/v1/folders/{doomed['id']}")) == {
        "id": doomed["id"],
        "deleted": True,
    }
    assert error(await alice.get(f"/api/v1/folders/{doomed['id']}"))[:2] == (404, "NOT_FOUND")
    assert await folder_ids(alice) == [top["id"], child["id"]]
    assert data(await alice.get(f"/api/v1/folders/{child['id']}"))["parent_id"] == top["id"]
    kept = data(await alice.get(f"/api/v1/chats/{chat['id']}"))
    assert (kept["title"], kept["folder_id"]) == ("Kept", None)
    assert await chats_in(alice, doomed["id"]) == []
    assert error(await alice.delete(f"/api/v1/folders/{doomed['id']}"))[:2] == (404, "NOT_FOUND")
    # a deleted id is not silently reused (its tombstone is kept for sync)
    assert error(await alice.post("/api/v1/folders", json={"id": doomed["id"], "title": "Again"}))[
        :2
    ] == (409, "CONFLICT")


async def test_every_change_is_a_folder_event_in_seq_order(alice: User, app: FastAPI) -> None:
    await new_folder(alice, id="fa", title="A")
    await new_folder(alice, id="fb", title="B", parent_id="fa")
    data(await alice.patch("/api/v1/folders/fa", json={"color": "blue"}))
    data(await alice.patch("/api/v1/folders/fa", json={"color": "blue"}))  # no change, no event
    data(await alice.post("/api/v1/folders/reorder", json={"folder_ids": ["fb", "fa"]}))
    data(await alice.delete("/api/v1/folders/fa"))

    events = [e for e in await outbox(app, alice.id) if e[0] == "chat.folder.v1"]
    assert all(e[1] == "folder.changed" for e in events)
    assert [(e[3]["folder_id"], e[3]["version"]) for e in events] == [
        ("fa", 1),
        ("fb", 1),
        ("fa", 2),
        ("fb", 2),
        ("fa", 3),
        ("fb", 3),
        ("fa", 4),
    ]
    seqs = [e[2] for e in events]
    assert seqs == sorted(set(seqs))  # increasing, none repeated
    assert events[-1][3]["deleted"] is True
    assert events[-2][3]["parent_id"] is None  # fb moved up when fa went


async def test_another_users_folder_is_not_found_everywhere(alice: User, bob: User) -> None:
    folder = await new_folder(alice, id="shared-folder-id", title="Alice's")
    alices_chat = await alice.new_chat(title="in it", folder_id=folder["id"])
    bobs_chat = await bob.new_chat(title="Bob's")
    base = f"/api/v1/folders/{folder['id']}"
    for response in [
        await bob.get(base),
        await bob.patch(base, json={"title": "x"}),
        await bob.delete(base),
        await bob.post(base + "/chats", json={"chat_id": bobs_chat["id"]}),
        await bob.delete(f"{base}/chats/{bobs_chat['id']}"),
        await bob.delete(f"{base}/chats/{alices_chat['id']}"),
        await bob.post("/api/v1/folders/reorder", json={"folder_ids": [folder["id"]]}),
    ]:
        assert error(response)[:2] == (404, "NOT_FOUND"), response.request.url
    assert await folder_ids(bob) == []
    assert await chats_in(bob, folder["id"]) == []
    # nor can Bob nest his folders or file his chats under it
    assert (
        error(await bob.post("/api/v1/folders", json={"title": "mine", "parent_id": folder["id"]}))[
            0
        ]
        == 400
    )
    assert (
        error(
            await bob.patch(f"/api/v1/chats/{bobs_chat['id']}", json={"folder_id": folder["id"]})
        )[0]
        == 400
    )
    # ids belong to their user: the same client id is free for Bob
    assert (await new_folder(bob, id="shared-folder-id", title="Bob's"))["title"] == "Bob's"
    assert data(await alice.get(base))["title"] == "Alice's"
    assert await chats_in(alice, folder["id"]) == [alices_chat["id"]]


async def test_bad_folders_are_refused_and_nothing_is_written(alice: User, app: FastAPI) -> None:
    for body in [
        {"id": "x" * 65, "title": "t"},
        {"id": "has space", "title": "t"},
        {"title": ""},
        {"title": "t" * 201},
        {},
        {"title": "t", "colour": "red"},
        {"title": "t", "color": "c" * 33},
        {"title": "t", "sort_order": "first"},
        {"title": "t", "parent_id": "no-such-folder"},
        {"title": None},
        {"title": "nul\x00"},
        {"title": "t", "color": "\x00"},
    ]:
        assert error(await alice.post("/api/v1/folders", json=body))[:2] == (
            400,
            "VALIDATION_ERROR",
        ), body
    assert error(await alice.get("/api/v1/folders/" + "y" * 65))[:2] == (400, "VALIDATION_ERROR")
    assert await folder_ids(alice) == []
    assert await outbox(app, alice.id) == []

    folder = await new_folder(alice, title="Real")
    url = f"/api/v1/folders/{folder['id']}"
    for body in [
        {"title": None},
        {"title": ""},
        {"shape": "round"},
        {"is_collapsed": "maybe"},
        {"parent_id": "no-such-folder"},
    ]:
        assert error(await alice.patch(url, json=body))[:2] == (400, "VALIDATION_ERROR"), body
    for body in [{}, {"chat_id": "bad id"}, {"chat_id": "c", "extra": 1}]:
        assert error(await alice.post(url + "/chats", json=body))[:2] == (
            400,
            "VALIDATION_ERROR",
        ), body
    assert data(await alice.get(url)) == folder
