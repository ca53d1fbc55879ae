"""metadata/installer_config.json (engine/installer_config.py parse_installer_config;
engine/engage_file_layout.py get_install_spec_template_file)."""
import os

from .engage_facts import FILE_LAYOUT, INSTALLER_CONFIG

# engine/installer_config.py CONFIG_PROPERTY_TYPES and _app_archive_validator_map.
INSTALLER_PROPERTY_TYPES = {"string", "hostname", "password", "int", "file", "path-to-be-created",
                            "install-subdir", "yes-or-no", "lov"}
APP_ARCHIVE_TYPES = {"django-archive", "war-file"}


def check_installer(tree):
    """engine/installer_config.py parse_installer_config and _parse_install_spec_options;
    engine/engage_file_layout.py get_install_spec_template_file, get_resource_def_file."""
    relative = "metadata/installer_config.json"
    if not os.path.exists(tree.path(relative)):
        return set()  # optional: an extension need not be an installer
    config = tree.load_json(relative)
    if config is None:
        return set()
    engage = INSTALLER_CONFIG + " parse_installer_config"
    if not isinstance(config, dict):
        tree.problem(relative, "must be a JSON object", engage)
        return set()
    for field in ("resource_def_file_name", "software_library_file_name", "log_level", "application_name"):
        if field not in config:
            tree.problem(relative, "missing required property %s" % field, engage)
        elif not isinstance(config[field], str):
            tree.problem(relative, "property %s must be a string" % field, engage)
    # engage_file_layout.py get_resource_def_file/get_software_library_file open these names in
    # Engage's own metadata directory (not the extension's), and preprocess_resources.py needs
    # Engage's file there: only Engage's own file names work.
    for field, expected in (("resource_def_file_name", "resource_definitions.json"),
                            ("software_library_file_name", "resource_library.json")):
        if isinstance(config.get(field), str) and config[field] != expected:
            tree.problem(relative, "%s is %r; Engage opens it in its own metadata directory, where only %s exists"
                         % (field, config[field], expected), FILE_LAYOUT + " get_resource_def_file")
    templates = set()
    options = config.get("install_spec_options")
    if "install_spec_file_name" in config and options is not None:
        tree.problem(relative, "has both install_spec_options and install_spec_file_name",
                     INSTALLER_CONFIG + " _parse_install_spec_options")
    if not isinstance(options, list):
        tree.problem(relative, "needs install_spec_options, a list", INSTALLER_CONFIG + " _parse_install_spec_options")
        return templates
    for index, option in enumerate(options):
        where = "install_spec_options[%d]" % index
        if not isinstance(option, dict):
            tree.problem(relative, "%s is not an object" % where, INSTALLER_CONFIG + " _parse_install_spec_options")
            continue
        for field in ("choice_name", "file_name"):
            if field not in option:
                tree.problem(relative, "%s: missing %s" % (where, field),
                             INSTALLER_CONFIG + " _parse_install_spec_options")
        for prop in option.get("config_properties", []) or []:
            check_installer_property(tree, relative, where, prop)
        file_name = option.get("file_name")
        if not isinstance(file_name, str):
            continue
        template = file_name + ".tmpl"
        templates.add(template)
        if file_name.endswith(".tmpl"):
            tree.problem(relative, "%s: file_name %s ends in .tmpl; Engage appends .tmpl itself and would look "
                         "for %s: give %s" % (where, file_name, template, file_name[:-len(".tmpl")]),
                         FILE_LAYOUT + " get_install_spec_template_file")
        elif not os.path.isfile(tree.path("metadata", template)):
            tree.problem(relative, "%s: Engage looks for the template metadata/%s, which does not exist"
                         % (where, template), FILE_LAYOUT + " get_install_spec_template_file")
    archive = config.get("application_archive")
    if archive is not None:
        if not isinstance(archive, dict) or not all(f in archive for f in ("resource", "name", "description",
                                                                             "archive_type")):
            tree.problem(relative, "application_archive needs resource, name, description, archive_type", engage)
        elif archive["archive_type"] not in APP_ARCHIVE_TYPES:
            tree.problem(relative, "application_archive: unknown archive_type %r" % archive["archive_type"], engage)
    return templates


def check_installer_property(tree, relative, where, prop):
    # engine/installer_config.py _validate_config_properties.
    engage = INSTALLER_CONFIG + " _validate_config_properties"
    if not isinstance(prop, dict):
        tree.problem(relative, "%s: a config property is not an object" % where, engage)
        return
    for field in ("resource", "name", "type", "description"):
        if field not in prop:
            tree.problem(relative, "%s: config property missing %s" % (where, field), engage)
    if "type" in prop and prop["type"] not in INSTALLER_PROPERTY_TYPES:
        tree.problem(relative, "%s: unknown config property type %r" % (where, prop["type"]), engage)
