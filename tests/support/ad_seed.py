"""The test domain's content, as LDIF for ldbadd: people with every account state, a
1,600-member group (more than AD's 1,500 values per read), nested and cyclic groups, a
group nested from outside the synced subtree, and rooms and equipment both as Exchange
marks them and as a configured filter finds them.

    OU=Bridge
      OU=People     alice bob carol (passwords), dave (uac 514), erin (expired),
                    frank (uac 66050: disabled among other bits),
                    Board Room (an Exchange room mailbox filed among people, enabled,
                    with a password)
        OU=Bulk     bulk0000 … bulk1599 (no password)
      OU=Groups     Big ⊃ all bulk; AllStaff ⊃ {Engineering, dave};
                    Engineering ⊃ {Backend, bob, Contractors}; Backend ⊃ {alice};
                    CycleA ⊃ {CycleB, alice}; CycleB ⊃ {CycleA, bob}
      OU=Rooms      Projector 1 (Exchange equipment), Quiet Room (description "meeting space")
    OU=Outside      Contractors ⊃ {carol}  (no source reads this OU)
"""

from __future__ import annotations

import base64

from tests.support.samba import BASE, USER_PASSWORD

BRIDGE = f"OU=Bridge,{BASE}"
PEOPLE = f"OU=People,{BRIDGE}"
BULK = f"OU=Bulk,{PEOPLE}"
GROUPS = f"OU=Groups,{BRIDGE}"
ROOMS = f"OU=Rooms,{BRIDGE}"
OUTSIDE = f"OU=Outside,{BASE}"
BIG_GROUP_SIZE = 1600
EXPIRED = 116_444_736_000_000_000  # 1970-01-01 as a FILETIME: long past

# group cn → member DNs, nested groups included (cycles too: AD allows them)
NESTING = {
    "AllStaff": [f"CN=Engineering,{GROUPS}", f"CN=dave,{PEOPLE}"],
    "Engineering": [f"CN=Backend,{GROUPS}", f"CN=bob,{PEOPLE}", f"CN=Contractors,{OUTSIDE}"],
    "Backend": [f"CN=alice,{PEOPLE}"],
    "CycleA": [f"CN=CycleB,{GROUPS}", f"CN=alice,{PEOPLE}"],
    "CycleB": [f"CN=CycleA,{GROUPS}", f"CN=bob,{PEOPLE}"],
}


def unicode_pwd(password: str) -> str:
    """AD's password attribute: the quoted password in UTF-16LE, base64 for LDIF."""
    return base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()


def entry(dn: str, *object_classes: str, **attributes: str | list[str]) -> str:
    lines = [f"dn: {dn}", *(f"objectClass: {oc}" for oc in object_classes)]
    for name, values in attributes.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name}:: {value[1:]}" if value.startswith(":") else f"{name}: {value}")
    return "\n".join(lines) + "\n"


def ou(dn: str) -> str:
    return entry(dn, "organizationalUnit")


def user(cn: str, parent: str = PEOPLE, *, password: bool = True, uac: int = 512,
         **attributes: str | list[str]) -> str:
    extra: dict = {"sAMAccountName": cn.replace(" ", "").lower()[:20],
                   "userAccountControl": str(uac if password else uac | 0x20)}
    if password:
        extra |= {"userPrincipalName": f"{cn.lower()}@example.test",
                  "unicodePwd": ":" + unicode_pwd(USER_PASSWORD)}
    return entry(f"CN={cn},{parent}", "user", **extra, **attributes)


def group(cn: str, parent: str = GROUPS, members: list[str] | None = None, **attributes) -> str:
    return entry(f"CN={cn},{parent}", "group", **({"member": members} if members else {}), **attributes)


def bulk_dn(number: int) -> str:
    return f"CN=bulk{number:04},{BULK}"


def seed_ldif() -> tuple[str, str]:
    """(entries for ldbadd, changes for ldbmodify): parents before children, groups after
    their members (a member value must name an existing entry)."""
    parts = [ou(BRIDGE), ou(PEOPLE), ou(BULK), ou(GROUPS), ou(ROOMS), ou(OUTSIDE),
             user("alice", displayName="Alice Anderson", mail="alice@example.test",
                  description="Backend developer"),
             user("bob", mail="bob@example.test"),
             user("carol", mail="carol@example.test"),
             user("dave", uac=514),
             user("erin", accountExpires=str(EXPIRED)),
             user("frank", uac=66050),
             # an enabled account with a password, as Teams Rooms devices sign in with
             user("Board Room", mail="board@example.test",
                  msExchRecipientTypeDetails="16", msExchResourceMetaData="ResourceType:Room"),
             user("Projector 1", ROOMS, password=False, uac=514, msExchRecipientTypeDetails="32"),
             user("Quiet Room", ROOMS, password=False, description="meeting space"),
             *(user(f"bulk{n:04}", BULK, password=False) for n in range(BIG_GROUP_SIZE)),
             group("Contractors", OUTSIDE, [f"CN=carol,{PEOPLE}"]),
             group("Big", members=[bulk_dn(n) for n in range(BIG_GROUP_SIZE)]),
             group("Backend", members=NESTING["Backend"]),
             group("Engineering", members=NESTING["Engineering"]),
             group("AllStaff", members=NESTING["AllStaff"]),
             group("CycleA", members=[f"CN=alice,{PEOPLE}"]),
             group("CycleB", members=NESTING["CycleB"])]
    # CycleA's member CycleB exists only now: close the cycle with a modification
    cycle = (f"dn: CN=CycleA,{GROUPS}\nchangetype: modify\nadd: member\n"
             f"member: CN=CycleB,{GROUPS}\n")
    return "\n".join(parts), cycle
