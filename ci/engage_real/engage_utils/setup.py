from distutils.core import setup
setup(name="engage_utils", version="1.0", packages=["engage_utils"],
      description="Stand-in for genforma's unpublished engage_utils (ci/engage-real.sh)")
