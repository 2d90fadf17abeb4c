"""Generated LDIF for the test directory: people, groups (three member syntaxes, a nested
cycle), rooms and equipment, plus the bridge's read-only service account."""

from __future__ import annotations

from tests.support.slapd import READER_DN, READER_PASSWORD, SUFFIX

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ROOMS = f"ou=rooms,{SUFFIX}"
EQUIPMENT = f"ou=equipment,{SUFFIX}"
FORMER = f"ou=former,{SUFFIX}"


PASSWORDS = {uid: f"{uid}-secret-pw" for uid in ("alice", "bob", "carol", "dave")}


def person_dn(uid: str, ou: str = PEOPLE) -> str:
    return f"uid={uid},{ou}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def entry(dn: str, **attributes: str | list[str]) -> str:
    lines = [f"dn: {dn}"]
    for name, values in attributes.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


def person(uid: str, cn: str, **extra: str | list[str]) -> str:
    return entry(person_dn(uid), objectClass=["inetOrgPerson"], uid=uid, cn=cn,
                 sn=cn.split()[-1], **extra)


def generated_people(count: int, start: int = 1) -> list[str]:
    return [person(f"user{n:03d}", f"User {n:03d}", mail=f"user{n:03d}@example.org")
            for n in range(start, start + count)]


def standard_directory(extra_people: int = 20) -> str:
    """The directory most tests start from: 5 named people + ``extra_people``, 6 groups,
    2 rooms, 1 piece of equipment."""
    entries = [
        entry(SUFFIX, objectClass=["dcObject", "organization"], o="Example", dc="example"),
        entry(READER_DN, objectClass=["organizationalRole", "simpleSecurityObject"], cn="bridge",
              userPassword=READER_PASSWORD),
        *(entry(dn, objectClass="organizationalUnit", ou=dn.split(",")[0][3:])
          for dn in (PEOPLE, GROUPS, ROOMS, EQUIPMENT, FORMER)),
        person("alice", "Alice Liddell", displayName="Alice L.", mail="alice@example.org",
               description="Finance", l="Europe/Paris", userPassword=PASSWORDS["alice"]),
        person("bob", "Bob Builder", mail="bob(at)example.org", l="Mars/Olympus",
               userPassword=PASSWORDS["bob"]),
        person("carol", "Carol Locked", mail="carol@example.org",
               pwdAccountLockedTime="000001010000Z", userPassword=PASSWORDS["carol"]),
        person("dave", "Dave Former", mail="dave@example.org", employeeType="former",
               userPassword=PASSWORDS["dave"]),
        person("erin", "Erin Plain"),
        *generated_people(extra_people),
        entry(group_dn("staff"), objectClass="groupOfNames", cn="staff",
              member=[person_dn("alice"), person_dn("bob"), f"uid=ghost,{PEOPLE}"]),
        entry(group_dn("admins"), objectClass="groupOfUniqueNames", cn="admins",
              uniqueMember=f"{person_dn('alice')}#'0101'B", description="Administrators"),
        entry(group_dn("posix"), objectClass="posixGroup", cn="posix", gidNumber="5000",
              memberUid=["bob", "erin"]),
        # outer and inner contain each other: the closure must terminate
        entry(group_dn("outer"), objectClass="groupOfNames", cn="outer",
              member=[group_dn("inner"), person_dn("erin")]),
        entry(group_dn("inner"), objectClass="groupOfNames", cn="inner",
              member=[group_dn("outer"), person_dn("alice")]),
        entry(group_dn("empty"), objectClass="groupOfNames", cn="empty", member=""),
        entry(f"cn=Room 4B,{ROOMS}", objectClass="room", cn="Room 4B", roomNumber="4B",
              description="Fourth floor, 12 seats"),
        entry(f"cn=Boardroom,{ROOMS}", objectClass="room", cn="Boardroom"),
        entry(f"cn=Projector 1,{EQUIPMENT}", objectClass="device", cn="Projector 1",
              description="Beamer"),
    ]
    return "\n".join(entries)


STANDARD_COUNTS = {"people": 25, "groups": 6, "rooms": 2, "equipment": 1}
