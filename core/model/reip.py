"""Re-IP rules: the address a failed-over VM gets at the DR site, as a pure computation.

A rule's source is a pattern of the VM's current address: IPv4 with `*` octets
(`172.17.*.*`, optionally with the source subnet mask), an IPv4 or IPv6 network in CIDR form
(`172.17.0.0/16`, `fd00:1::/64`) or one address. Rules are tried in order; the first whose
source matches wins. The target keeps the VM's octets where it has `*` (`192.168.*.*`), or, in
CIDR form, keeps the VM's bits below the target prefix (for IPv6 the interface ID), and comes
with the new subnet mask, gateway, DNS and WINS servers.

Both forms reduce to a (mask, value) pair over the address bits: an address matches when
`address & mask == value`, the new address is `(address & ~tmask) | tvalue`, and a rule is
shadowed by an earlier one when every bit the earlier rule checks is checked the same way by
it. Applying the result to a guest is the failover code's business (issue 4).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.errors import InvalidSettingError, ReIpError
from core.model import fields

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class _Pattern:
    version: int
    mask: int  # bits that are fixed
    value: int  # their values
    prefix: int | None  # the CIDR prefix length, when written as CIDR

    @property
    def width(self) -> int:
        return 32 if self.version == 4 else 128

    def matches(self, addr: int) -> bool:
        return addr & self.mask == self.value

    def covers(self, other: _Pattern) -> bool:
        """Every address `other` matches, this matches too."""
        return (
            self.version == other.version
            and self.mask & ~other.mask == 0
            and other.value & self.mask == self.value
        )

    def text(self) -> str:
        if self.version == 6 or self.prefix is not None:
            return str(_network(self.version, self.value, self.prefix or self.width))
        octets = [
            "*" if (self.mask >> s) & 0xFF == 0 else str((self.value >> s) & 0xFF)
            for s in (24, 16, 8, 0)
        ]
        return ".".join(octets)


def _parse(fieldname: str, text: object) -> _Pattern:
    if not isinstance(text, str) or not text.strip():
        raise InvalidSettingError(fieldname, f"{fields.show(text)} is not an IP address pattern")
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as e:
            problem = str(e)
            if "has host bits set" in problem:
                net = ipaddress.ip_network(text, strict=False)
                problem = f"has host bits set (the network is {net})"
            else:
                problem = "is not a network in CIDR form"
            raise InvalidSettingError(fieldname, f"{fields.show(text)} {problem}") from None
        return _Pattern(net.version, int(net.netmask), int(net.network_address), net.prefixlen)
    if ":" in text:
        try:
            addr6 = ipaddress.IPv6Address(text)
        except ValueError:
            raise InvalidSettingError(
                fieldname, f"{fields.show(text)} is not an IPv6 address or network"
            ) from None
        return _Pattern(6, (1 << 128) - 1, int(addr6), None)
    parts = text.split(".")
    mask = value = 0
    for part in parts:
        ok = part == "*" or (part.isdigit() and part.isascii() and len(part) <= 3)
        if (
            len(parts) != 4
            or not ok
            or (part != "*" and (int(part) > 255 or part != str(int(part))))
        ):
            raise InvalidSettingError(
                fieldname,
                f"{fields.show(text)} is not an IPv4 address, a pattern with * octets "
                '(such as "172.17.*.*") or a network in CIDR form',
            )
        mask <<= 8
        value <<= 8
        if part != "*":
            mask |= 0xFF
            value |= int(part)
    return _Pattern(4, mask, value, None)


def _netmask(fieldname: str, text: object) -> int:
    """A dotted IPv4 subnet mask; returns the prefix length."""
    try:
        if not isinstance(text, str) or text.count(".") != 3:
            raise ValueError
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    except ValueError:
        raise InvalidSettingError(
            fieldname, f'{fields.show(text)} is not a subnet mask (such as "255.255.0.0")'
        ) from None


def _address(fieldname: str, text: object, version: int) -> IpAddress:
    try:
        if not isinstance(text, str):
            raise ValueError
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidSettingError(fieldname, f"{fields.show(text)} is not an IP address") from None
    if addr.version != version:
        raise InvalidSettingError(
            fieldname, f"{fields.show(text)} is IPv{addr.version} but the rule is IPv{version}"
        )
    return addr


def _network(
    version: int, value: int, prefix: int
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if version == 4:
        return ipaddress.IPv4Network((value, prefix), strict=False)
    return ipaddress.IPv6Network((value, prefix), strict=False)


def _bits(prefix: int, width: int) -> int:
    return ((1 << prefix) - 1) << (width - prefix) if prefix else 0


@dataclass(frozen=True)
class ReIpRule:
    source: str
    target: str
    source_mask: str | None = None  # IPv4 wildcard or single-address sources: the source subnet
    target_mask: str | None = None  # IPv4: required unless the target is in CIDR form
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    wins: tuple[str, ...] = ()
    description: str = ""

    _source: _Pattern = field(init=False, repr=False, compare=False)
    _target: _Pattern = field(init=False, repr=False, compare=False)
    _prefix: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        src = _parse("source", self.source)
        tgt = _parse("target", self.target)
        if src.version != tgt.version:
            raise InvalidSettingError(
                "target",
                f"{fields.show(self.target)} is IPv{tgt.version}, the source IPv{src.version}",
            )
        if self.source_mask is not None:
            if src.version == 6 or src.prefix is not None:
                raise InvalidSettingError(
                    "source_mask", "give a mask only with an IPv4 pattern; CIDR carries its own"
                )
            _netmask("source_mask", self.source_mask)
        if src.version == 6:
            if tgt.prefix is None:
                raise InvalidSettingError(
                    "target", f'{fields.show(self.target)} needs a prefix length (such as "/64")'
                )
            if self.target_mask is not None:
                raise InvalidSettingError(
                    "target_mask", "IPv6 rules take the prefix length from the target"
                )
            prefix = tgt.prefix
        elif tgt.prefix is not None:
            prefix = tgt.prefix
            if self.target_mask is not None and _netmask("target_mask", self.target_mask) != prefix:
                raise InvalidSettingError(
                    "target_mask",
                    f"{fields.show(self.target_mask)} differs from the target's /{prefix}",
                )
        else:
            if self.target_mask is None:
                raise InvalidSettingError("target_mask", "the target subnet mask is required")
            prefix = _netmask("target_mask", self.target_mask)
        subnet = _bits(prefix, tgt.width)
        full = (1 << tgt.width) - 1
        if tgt.mask == full and tgt.width - prefix >= 2:
            host = tgt.value & ~subnet & full
            if host in (0, ~subnet & full):
                which = "network" if host == 0 else "broadcast"
                raise InvalidSettingError(
                    "target",
                    f"{fields.show(self.target)} is the {which} address of its subnet /{prefix}",
                )
        if self.gateway is not None:
            gw = int(_address("gateway", self.gateway, tgt.version))
            if (gw ^ tgt.value) & subnet & tgt.mask:
                raise InvalidSettingError(
                    "gateway",
                    f"{fields.show(self.gateway)} is outside the target subnet "
                    f"({tgt.text()} /{prefix})",
                )
            if tgt.mask == full and gw == tgt.value:
                raise InvalidSettingError("gateway", "is the target address itself")
        for i, server in enumerate(self.dns):
            _address(f"dns[{i}]", server, tgt.version)
        if self.wins and tgt.version == 6:
            raise InvalidSettingError("wins", "WINS servers are IPv4 only")
        for i, server in enumerate(self.wins):
            _address(f"wins[{i}]", server, 4)
        fields.text("description", self.description)
        object.__setattr__(self, "_source", src)
        object.__setattr__(self, "_target", tgt)
        object.__setattr__(self, "_prefix", prefix)

    @property
    def version(self) -> int:
        return self._source.version

    @property
    def prefix_length(self) -> int:
        return self._prefix

    def matches(self, address: IpAddress) -> bool:
        return address.version == self.version and self._source.matches(int(address))

    def covers(self, other: ReIpRule) -> bool:
        return self._source.covers(other._source)


@dataclass(frozen=True)
class ReIpResult:
    rule_index: int
    rule: ReIpRule
    old_address: str
    address: str
    prefix_length: int
    netmask: str | None  # IPv4 only
    gateway: str | None
    dns: tuple[str, ...]
    wins: tuple[str, ...]


def check_rules(rules: Sequence[ReIpRule]) -> None:
    """Refuse a rule that can never apply because an earlier rule matches all it matches.

    Partial overlaps are allowed: that is what the order is for (a specific rule first, a
    broader one after it).
    """
    for j, later in enumerate(rules):
        for i in range(j):
            if rules[i].covers(later):
                raise InvalidSettingError(
                    f"[{j}]",
                    f"never applies: rule [{i}] ({rules[i].source}) comes first and matches "
                    f"every address {later.source} matches",
                )


def reip(rules: Sequence[ReIpRule], address: str) -> ReIpResult | None:
    """The new address for a VM's `address` under the first matching rule; None if none does.

    Raises ReIpError when the rule produces an address that cannot be used (the network or
    broadcast address of its subnet, or one whose gateway is outside its subnet).
    """
    try:
        addr = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ReIpError(fields.show(address), "not an IP address") from None
    for index, rule in enumerate(rules):
        if not rule.matches(addr):
            continue
        tgt = rule._target
        full = (1 << tgt.width) - 1
        new_int = (int(addr) & ~tgt.mask & full) | tgt.value
        net = _network(addr.version, new_int, rule.prefix_length)
        new = (
            ipaddress.IPv4Address(new_int) if addr.version == 4 else ipaddress.IPv6Address(new_int)
        )
        if net.num_addresses >= 4 and new in (net.network_address, net.broadcast_address):
            which = "network" if new == net.network_address else "broadcast"
            raise ReIpError(address, f"rule [{index}] gives {new}, the {which} address of {net}")
        if rule.gateway is not None and ipaddress.ip_address(rule.gateway) not in net:
            raise ReIpError(
                address, f"rule [{index}] gives {net}, which gateway {rule.gateway} is outside"
            )
        return ReIpResult(
            rule_index=index,
            rule=rule,
            old_address=str(addr),
            address=str(new),
            prefix_length=rule.prefix_length,
            netmask=str(net.netmask) if addr.version == 4 else None,
            gateway=rule.gateway,
            dns=rule.dns,
            wins=rule.wins,
        )
    return None
