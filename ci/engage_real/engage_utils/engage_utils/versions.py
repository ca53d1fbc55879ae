def compare_versions(v1, v2):
    """-1 if v1 > v2, 0 if equal, 1 if v1 < v2 (dotted numeric versions), as Engage's pip driver reads it."""
    def norm(v):
        return [int(p) if p.isdigit() else p for p in str(v).split(".")]
    a, b = norm(v1), norm(v2)
    if a > b:
        return -1
    if a < b:
        return 1
    return 0
