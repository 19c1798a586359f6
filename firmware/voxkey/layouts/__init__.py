"""Host keyboard layout data (``<name>.yaml``) and the tools that make and check it.

The YAML files are the runtime data ``voxkey.keymap`` reads. ``xkb_host`` and
``generate`` need libxkbcommon (PyPI ``xkbcommon``, Debian ``xkb-data`` and
``libx11-data``) and are used only to build and verify those files, never on
the device.

Adding a layout: add a ``LayoutSpec`` to ``generate.LAYOUTS`` (our name, the
xkeyboard-config layout and variant, whether its keyboards have the ISO key),
run ``python -m voxkey.layouts.generate NAME`` and commit the YAML;
``tests/test_layouts.py`` then checks it against xkbcommon like the others.
"""
