"""The peakscale policy pack: ``pulumi preview --policy-pack policy``. Rules live in stacks/policy.py."""

from pulumi_policy import PolicyPack

from stacks.policy import build_policies

PolicyPack(name="peakscale-platform", policies=build_policies())
