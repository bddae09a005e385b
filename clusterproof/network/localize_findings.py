"""The search's conclusion as findings: a FAIL per bad node (its subject is the node, so it lands in the
exclude list), per bad link and per unresolved set; a PASS per node found fine; NOT_TESTED when no group
reproduced the fault. Every finding quotes the rounds it rests on."""

from __future__ import annotations

from clusterproof.findings import Criterion, Evidence, Finding, Subject, failed, not_tested, passed
from clusterproof.network.localize_model import Localization


def _evidence(loc: Localization, nodes: tuple[str, ...]) -> list[Evidence]:
    out = []
    for r in loc.rounds:
        for g in r.groups:
            if set(nodes) & set(g.nodes):
                lines = (f"round {r.number} ({r.strategy}): {g.line()}", *g.measurement.lines)
                out.append(Evidence(g.measurement.log, lines))
    return out


def _where(loc: Localization, node: str) -> str:
    return "; ".join(f"r{r.number} {g.measurement.label}: {g.why}" for r, g in loc.evidence_for(node))


def localization_findings(loc: Localization, criterion: Criterion = Criterion.BAD_NODE, rail: str | None = None) -> list[Finding]:
    """Findings for one search (``rail`` names the rail when the search ran on one rail only)."""
    tag = f"{loc.label or 'search'} ({loc.kind})"
    values = {"kind": str(loc.kind), "rounds": len(loc.rounds), "runs": loc.runs, "search_s": round(loc.seconds, 3),
              "limit_gbs": loc.limit}

    def node_subject(node: str) -> Subject:
        return Subject("node", node) if rail is None else Subject("rail", f"{node}/{rail}", node=node)

    out: list[Finding] = []
    for node in loc.bad_nodes:
        where = f" on {rail}" if rail else ""
        out.append(failed(criterion, node_subject(node),
                          f"{node}{where}: {loc.kind} in every group it was in, fine groups without it "
                          f"({len(loc.rounds)} rounds, {loc.runs} runs): {_where(loc, node)}",
                          evidence=_evidence(loc, (node,)), values=values))
    for a, b in loc.bad_links:
        out.append(failed(criterion, Subject("pair", f"{a},{b}"),
                          f"link {a}-{b}{f' on {rail}' if rail else ''}: {loc.kind} together, each fine with other nodes "
                          f"({_where(loc, a)} | {_where(loc, b)})", evidence=_evidence(loc, (a, b)), values=values))
    if loc.unresolved:
        out.append(failed(criterion, Subject("node_set", ",".join(loc.unresolved)),
                          f"{tag}: could not isolate one node among {', '.join(loc.unresolved)}"
                          + (f" ({loc.note})" if loc.note else ""), evidence=_evidence(loc, tuple(loc.unresolved)), values=values))
    if not out:
        out.append(not_tested(criterion, Subject("node_set", ",".join(loc.nodes)),
                              f"{tag}: no group of two reproduced the all-node failure ({loc.note or 'every group passed'})",
                              evidence=_evidence(loc, loc.nodes)))
    for node in loc.good_nodes:
        out.append(passed(criterion, node_subject(node), f"{node}: fine in {_where(loc, node)}", values=values))
    return out
