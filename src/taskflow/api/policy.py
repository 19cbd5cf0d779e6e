"""The ValidatingAdmissionPolicy that rejects unresolvable result references at apply.

The CRD cannot check ``$(steps.STEP.results.NAME)`` references: its rules are priced at
the largest Task the schema allows, and any rule that scans every text of 64 steps is
priced far past the API server's limit (see :mod:`taskflow.api.executor`). An admission
policy is priced by the object actually sent, so ordinary Tasks are checked at
``kubectl apply`` with the same words as :func:`taskflow.api.executor.reference_problem`.

A Task whose texts hold thousands of references can exhaust the policy's runtime budget;
``failurePolicy: Ignore`` lets it through, and the operator's own check ends it
``Failure/InvalidSpec`` before any pod exists: nothing valid is ever refused for its size.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from taskflow.api.task import GROUP, PLURAL, RESULT_REF_PATTERN

POLICY_NAME: Final = f"{PLURAL}.{GROUP}-result-references"

# A reference ``$(steps.S.results.R)`` split at its dots: S and R hold no dot, so item 1 is
# the step and item 3 the result followed by ")".
_STEP: Final = "r.split('.')[1]"
_RESULT: Final = "r.split('.')[3].substring(0, size(r.split('.')[3]) - 1)"
_AT: Final = f"variables.names.indexOf({_STEP})"

# Where the agent substitutes references (taskflow.api.executor.texts): command, args, env
# values and the script.
_TEXTS: Final = (
    "(s.?command.orValue([]) + s.?args.orValue([])\n   "
    " + s.?env.orValue([]).filter(e, has(e.value)).map(e, e.value)"
    " + (has(s.script) ? [s.script] : []))"
)

# One message per bad reference, in the words of executor.reference_problem; "" when fine.
_DESCRIBE: Final = (
    f"{_AT} < 0\n"
    "      ? 'step ' + s.name + ': ' + r + ' names no step of this Task'\n"
    f"      : {_AT} >= variables.names.indexOf(s.name)\n"
    "      ? 'step ' + s.name + ': ' + r + ' names a step that has not run before it'\n"
    f"      : !variables.steps[{_AT}].?results.orValue([]).exists(x, x.name == {_RESULT})\n"
    f"      ? 'step ' + s.name + ': ' + r + ': step ' + {_STEP}"
    f" + ' declares no result ' + {_RESULT}\n"
    "      : '')"
)

PROBLEMS: Final = (
    f"variables.steps.map(s,\n  {_TEXTS}\n"
    f"  .map(t, t.findAll('{RESULT_REF_PATTERN}')\n"
    f"    .map(r, {_DESCRIBE}\n"
    "    .filter(m, m != '').join('; '))\n"
    "  .filter(m, m != '').join('; '))\n"
    ".filter(m, m != '').join('; ')\n"
)

MESSAGE_PREFIX: Final = "a result reference cannot resolve: "


def admission_policy() -> list[dict[str, Any]]:
    """The policy and its binding (cluster-scoped, like the CRD)."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Ignore",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        # the spec is immutable after create (the CRD's rule)
                        "operations": ["CREATE"],
                        "resources": [PLURAL],
                    }
                ]
            },
            "variables": [
                {"name": "steps", "expression": "object.spec.?steps.orValue([])"},
                {"name": "names", "expression": "variables.steps.map(s, s.name)"},
                {"name": "problems", "expression": PROBLEMS},
            ],
            "validations": [
                {
                    "expression": "variables.problems == ''",
                    "messageExpression": f"'{MESSAGE_PREFIX}' + variables.problems",
                    "reason": "Invalid",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
    }
    return [policy, binding]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the CEL) as literal blocks, so the chart's file reads as code."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def admission_policy_yaml() -> str:
    return yaml.dump_all(admission_policy(), Dumper=_Dumper, sort_keys=False, width=100)
