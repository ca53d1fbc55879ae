"""Resource definitions as Engage's preprocessing step writes them for the config engine."""
import json


class ResourceDef(object):
    def __init__(self, json_dict):
        self.json_dict = json_dict

    @staticmethod
    def from_json(json_dict):
        if "key" not in json_dict:
            raise ValueError("resource definition without a key: %r" % (json_dict,))
        return ResourceDef(json_dict)


def pp_resource_defs(resource_defs, version):
    return json.dumps({"resource_def_version": version,
                       "resource_definitions": [r.json_dict for r in resource_defs]},
                      indent=2, sort_keys=True)
