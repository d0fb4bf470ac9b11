"""Re-IP rules: wildcard and CIDR sources, first match wins, IPv6, and refused rules."""

from __future__ import annotations

import pytest

from core.errors import InvalidSettingError, ReIpError
from core.model.reip import ReIpRule, check_rules, reip

SPECIFIC = ReIpRule(
    "172.17.1.*",
    "10.9.1.*",
    source_mask="255.255.255.0",
    target_mask="255.255.255.0",
    gateway="10.9.1.1",
    dns=("10.9.0.53",),
    wins=("10.9.0.60",),
    description="SQL subnet",
)
BROAD = ReIpRule("172.17.*.*", "192.168.*.*", target_mask="255.255.0.0", gateway="192.168.0.1")
CIDR = ReIpRule("10.0.0.0/8", "172.20.*.*", target_mask="255.255.0.0")
V6 = ReIpRule("fd00:17::/64", "fd00:9::/64", gateway="fd00:9::1", dns=("fd00:9::53",))
RULES = [SPECIFIC, BROAD, CIDR, V6]


def test_wildcard_octets_are_kept_from_the_vm_address() -> None:
    result = reip(RULES, "172.17.3.44")
    assert result is not None
    assert (result.rule_index, result.address, result.netmask) == (1, "192.168.3.44", "255.255.0.0")
    assert result.prefix_length == 16 and result.gateway == "192.168.0.1"


def test_first_match_wins_over_a_broader_later_rule() -> None:
    result = reip(RULES, "172.17.1.9")
    assert result is not None
    assert (result.rule_index, result.address, result.netmask) == (0, "10.9.1.9", "255.255.255.0")
    assert result.dns == ("10.9.0.53",) and result.wins == ("10.9.0.60",)
    # The same rules in the other order: the broad rule now takes it.
    swapped = reip([BROAD, CIDR], "172.17.1.9")
    assert swapped is not None and swapped.address == "192.168.1.9"


def test_cidr_source_matches_by_network_and_keeps_the_target_wildcards() -> None:
    result = reip(RULES, "10.200.7.8")
    assert result is not None and (result.rule_index, result.address) == (2, "172.20.7.8")
    assert reip(RULES, "11.0.0.1") is None


def test_cidr_target_keeps_the_host_bits() -> None:
    rule = ReIpRule("192.168.10.0/24", "10.50.20.0/24", gateway="10.50.20.254")
    result = reip([rule], "192.168.10.77")
    assert result is not None
    assert (result.address, result.netmask, result.prefix_length) == (
        "10.50.20.77",
        "255.255.255.0",
        24,
    )


def test_single_address_source() -> None:
    rule = ReIpRule("172.17.5.5", "10.1.1.5", target_mask="255.255.255.0")
    assert reip([rule], "172.17.5.6") is None
    result = reip([rule], "172.17.5.5")
    assert result is not None and result.address == "10.1.1.5"


def test_ipv6_keeps_the_interface_id_and_ignores_ipv4_rules() -> None:
    result = reip(RULES, "fd00:17::a:b:c:d")
    assert result is not None
    assert (result.rule_index, result.address, result.prefix_length) == (3, "fd00:9::a:b:c:d", 64)
    assert result.netmask is None and result.gateway == "fd00:9::1"
    # A small IPv6 address (all high bits zero) must not be taken for IPv4.
    assert reip([ReIpRule("::/96", "fd00:1::/96")], "::5") is not None
    assert reip(RULES, "fd00:18::1") is None


def test_no_rule_matches() -> None:
    assert reip(RULES, "8.8.8.8") is None
    assert reip([], "172.17.1.1") is None


def test_not_an_address() -> None:
    with pytest.raises(ReIpError) as err:
        reip(RULES, "172.17.1")
    assert str(err.value) == 'Re-IP of "172.17.1": not an IP address'


def test_a_result_on_the_network_or_broadcast_address_is_refused() -> None:
    rule = ReIpRule("172.17.*.*", "10.9.9.*", target_mask="255.255.255.0")
    with pytest.raises(ReIpError) as err:
        reip([rule], "172.17.4.255")
    assert str(err.value) == (
        "Re-IP of 172.17.4.255: rule [0] gives 10.9.9.255, the broadcast address of 10.9.9.0/24"
    )


def test_a_gateway_outside_the_computed_subnet_is_reported() -> None:
    # The gateway cannot be checked fully when the subnet's octets come from the VM.
    rule = ReIpRule("172.17.*.*", "10.9.*.*", target_mask="255.255.255.0", gateway="10.9.1.1")
    assert reip([rule], "172.17.1.20") is not None
    with pytest.raises(ReIpError) as err:
        reip([rule], "172.17.2.20")
    assert "rule [0] gives 10.9.2.0/24, which gateway 10.9.1.1 is outside" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"source": "172.17.*", "target": "10.*.*.*", "target_mask": "255.0.0.0"},
            'source: "172.17.*" is not an IPv4 address, a pattern with * octets '
            '(such as "172.17.*.*") or a network in CIDR form',
        ),
        (
            {"source": "172.17.256.*", "target": "10.*.*.*", "target_mask": "255.0.0.0"},
            'source: "172.17.256.*" is not an IPv4 address, a pattern with * octets '
            '(such as "172.17.*.*") or a network in CIDR form',
        ),
        (
            {"source": "172.17.1.0/16", "target": "10.*.*.*", "target_mask": "255.0.0.0"},
            'source: "172.17.1.0/16" has host bits set (the network is 172.17.0.0/16)',
        ),
        (
            {"source": "172.17.*.*", "target": "10.9.*.*"},
            "target_mask: the target subnet mask is required",
        ),
        (
            {"source": "172.17.*.*", "target": "10.9.*.*", "target_mask": "255.0.255.0"},
            'target_mask: "255.0.255.0" is not a subnet mask (such as "255.255.0.0")',
        ),
        (
            {"source": "172.17.*.*", "target": "fd00::/64"},
            'target: "fd00::/64" is IPv6, the source IPv4',
        ),
        (
            {"source": "fd00:1::/64", "target": "fd00:2::"},
            'target: "fd00:2::" needs a prefix length (such as "/64")',
        ),
        (
            {"source": "fd00:1::/64", "target": "fd00:2::1/64"},
            'target: "fd00:2::1/64" has host bits set (the network is fd00:2::/64)',
        ),
        (
            {
                "source": "172.17.*.*",
                "target": "10.9.1.*",
                "target_mask": "255.255.255.0",
                "gateway": "10.9.2.1",
            },
            'gateway: "10.9.2.1" is outside the target subnet (10.9.1.* /24)',
        ),
        (
            {"source": "172.17.1.5", "target": "10.9.1.0", "target_mask": "255.255.255.0"},
            'target: "10.9.1.0" is the network address of its subnet /24',
        ),
        (
            {
                "source": "172.17.*.*",
                "target": "10.9.*.*",
                "target_mask": "255.255.0.0",
                "dns": ["10.9.0.53", "dns.example"],
            },
            'dns[1]: "dns.example" is not an IP address',
        ),
        (
            {"source": "fd00:1::/64", "target": "fd00:2::/64", "wins": ["10.0.0.1"]},
            "wins: WINS servers are IPv4 only",
        ),
        (
            {
                "source": "172.17.0.0/16",
                "source_mask": "255.255.0.0",
                "target": "10.9.*.*",
                "target_mask": "255.255.0.0",
            },
            "source_mask: give a mask only with an IPv4 pattern; CIDR carries its own",
        ),
        (
            {"source": "172.17.*.*", "target": "10.9.0.0/16", "target_mask": "255.255.255.0"},
            'target_mask: "255.255.255.0" differs from the target\'s /16',
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    if "dns" in kwargs:
        kwargs["dns"] = tuple(kwargs["dns"])  # type: ignore[arg-type]
    if "wins" in kwargs:
        kwargs["wins"] = tuple(kwargs["wins"])  # type: ignore[arg-type]
    with pytest.raises(InvalidSettingError) as err:
        ReIpRule(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


def test_a_rule_shadowed_by_an_earlier_one_is_refused() -> None:
    check_rules(RULES)  # specific before broad: fine
    with pytest.raises(InvalidSettingError) as err:
        check_rules([BROAD, SPECIFIC])
    assert str(err.value) == (
        "[1]: never applies: rule [0] (172.17.*.*) comes first and matches every address "
        "172.17.1.* matches"
    )
    # A CIDR covering a wildcard pattern, and a duplicate, are shadowed too.
    with pytest.raises(InvalidSettingError, match=r"^\[1\]: never applies: rule \[0\]"):
        check_rules([ReIpRule("172.16.0.0/12", "10.*.*.*", target_mask="255.0.0.0"), BROAD])
    with pytest.raises(InvalidSettingError, match=r"^\[1\]: never applies"):
        check_rules([CIDR, CIDR])
    # Partial overlaps are allowed: that is what the order is for.
    check_rules([ReIpRule("172.*.1.*", "10.1.*.*", target_mask="255.255.0.0"), BROAD])
