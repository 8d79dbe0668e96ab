"""Every command's help renders (argparse %-formats help strings: a stray % breaks --help)."""

import argparse

import pytest

from abcl.cli import build_parser


def subcommands():
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, actions[0].choices


def test_top_level_help_lists_every_command():
    parser, commands = subcommands()
    text = parser.format_help()
    assert all(name in text for name in commands)


@pytest.mark.parametrize("name", sorted(subcommands()[1]))
def test_command_help_renders(name):
    text = subcommands()[1][name].format_help()
    assert text.startswith(f"usage: abcl {name}")
