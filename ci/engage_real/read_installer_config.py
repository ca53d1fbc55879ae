"""Reads the extension's installer configuration as Engage's `install` command does (the deployer
does not): engine/engage_file_layout.py get_installer_config -> engine/installer_config.py
parse_installer_config, then get_install_spec_template_file for each install spec option.

Fed on stdin to the deployment home's Python 2.7 (`HOME/engage/bin/python -`, from HOME) by
deploy.py; prints each option's template file.
"""
from engage.engine.engage_file_layout import get_engine_layout_mgr
efl = get_engine_layout_mgr("datablox")
config = efl.get_installer_config()
for i in range(len(config.install_spec_options)):
    print(efl.get_install_spec_template_file(i))
