"""The peakscale policy pack: ``pulumi preview --policy-pack policy``. Rules live in stacks/crossguard.py (CrossGuard rules)."""

from pulumi_policy import PolicyPack

from stacks.crossguard import build_policies

PolicyPack(name="peakscale-platform", policies=build_policies())
