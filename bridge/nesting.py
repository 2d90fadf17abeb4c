"""Effective membership through nested groups that no source reads, as the server sees it.

The store always closes the synced direct memberships itself (cycle-safe). That closure is
blind to a nested group outside every source: Engineering ⊃ Contractors ⊃ carol, with
Contractors in an OU nobody syncs, leaves carol out of Engineering. Active Directory (and
Samba) evaluate LDAP_MATCHING_RULE_IN_CHAIN, so for each such outside group X,
``(memberOf:1.2.840.113556.1.4.1941:=X)`` over the sources' subtrees gives the synced
entries inside it at any depth; they become effective members of every synced group that
lists X, and the store's closure carries them further up. The result is what one in-chain
search per synced group would give, at the cost of one search per outside nested group.

Whether a server evaluates the rule is probed with a base search that must match (a group
against one of its own direct members, a synced one where there is one): a server that
does not know the rule answers with no entry, not an error, so only a probe can tell. A
server that passed is remembered per URL for the process; one that did not is asked again
next run (the membership probed may have changed in between).
"""

from __future__ import annotations

import logging
import threading

from bridge.directory import Directory, in_chain
from bridge.dn import InvalidDN, dn_key, is_within
from bridge.mapper import SourceMap, identifier_uuid, principal_id
from bridge.model import PrincipalType, SearchQuery
from bridge.store import Snapshot

log = logging.getLogger(__name__)

NESTED_GROUPS = "(&(objectClass=group)(memberOf=*))"  # groups that are members of a group

_probed: dict[str, bool] = {}  # server URL → whether it evaluates the in-chain rule
_probed_lock = threading.Lock()


def server_supports_in_chain(directory: Directory, pairs: list[tuple[str, str]]) -> bool:
    """Whether ``directory`` evaluates the in-chain rule, tried on (group DN, direct member
    DN) pairs until one matches; a yes is remembered per server URL."""
    with _probed_lock:
        if _probed.get(directory.url):
            return True
    supported = any(directory.matches(group, in_chain("member", member)) for group, member in pairs)
    with _probed_lock:
        _probed[directory.url] = supported
    log.info("%s %s the in-chain matching rule", directory.url,
             "evaluates" if supported else "does not evaluate (or no probe matched)")
    return supported


def add_server_nesting(directory: Directory, snapshot: Snapshot, smaps: list[SourceMap]) -> str:
    """Stage what nested groups outside every source contribute; returns how nesting was
    resolved: ``in-chain`` (the server was asked) or ``client`` (the synced closure only)."""
    pairs = snapshot.member_pairs()
    if not pairs or not server_supports_in_chain(directory, pairs):
        return "client"
    if snapshot.narrow:  # the groups outside every source are looked for among all groups
        snapshot.widen()
    outside = snapshot.unresolved_member_refs()
    if not outside:
        return "in-chain"
    group_bases = [smap.base for smap in smaps if smap.type is PrincipalType.GROUP]
    nested = {key: dn for key, dn in _nested_groups(directory, group_bases) if key in outside}
    id_attribute = smaps[0].id_attribute
    binary = smaps[0].query().binary
    edges: list[tuple[str, str]] = []
    for key, dn in sorted(nested.items()):
        inside = set()
        for base in covering_bases([smap.base for smap in smaps]):
            query = SearchQuery(base, in_chain("memberOf", dn), (id_attribute,), "sub", binary)
            inside |= {principal_id(identifier_uuid(id_attribute, values[0]))
                       for entry in directory.read(query) if (values := entry.values(id_attribute))}
        edges += [(group_id, member_id) for group_id in outside[key] for member_id in inside]
    snapshot.add_chain_edges(edges)
    log.info("in-chain: %d nested groups outside every source add %d effective memberships",
             len(nested), len(edges))
    return "in-chain"


def _nested_groups(directory: Directory, group_bases: list[str]) -> list[tuple[str, str]]:
    """(DN key, DN) of every group that is itself a member, in the naming contexts the
    group sources lie in (where a nested group outside them would be)."""
    found = []
    for context in _contexts(directory, group_bases):
        for entry in directory.read(SearchQuery(context, NESTED_GROUPS, ("1.1",))):
            try:
                found.append((dn_key(entry.dn), entry.dn))
            except InvalidDN:
                log.debug("unparseable DN %r of a nested group", entry.dn)
    return found


def _contexts(directory: Directory, bases: list[str]) -> list[str]:
    contexts = set()
    for base in bases:
        holding = [nc for nc in directory.info.naming_contexts if _within(base, nc)]
        contexts.add(max(holding, key=len) if holding else base)
    return covering_bases(sorted(contexts))


def _within(dn: str, ancestor: str) -> bool:
    try:
        return is_within(dn, ancestor)
    except InvalidDN:
        return False


def covering_bases(bases: list[str]) -> list[str]:
    """The bases no other one contains (a subtree search of each covers them all)."""
    unique = list({dn_key(base): base for base in bases}.values())
    return sorted(base for base in unique
                  if not any(other != base and is_within(base, other) for other in unique))
