#!/usr/bin/env python3
"""Checks a JUnit XML report as a CI system reads it: well-formed, the suite's counts agree
with its test cases, at least --min-tests cases, and no failure or error.

usage: check-junit.py REPORT [--min-tests N]
"""
import argparse
import sys
import xml.etree.ElementTree as ET


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--min-tests", type=int, default=1)
    args = ap.parse_args()
    root = ET.parse(args.report).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        sys.exit(f"{args.report}: no <testsuite>")
    total = 0
    bad = []
    for suite in suites:
        cases = suite.findall("testcase")
        counted = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        for key, n in counted.items():
            if int(suite.get(key, -1)) != n:
                sys.exit(f"{args.report}: {key}={suite.get(key)} but {n} test cases say so")
        total += len(cases)
        for c in cases:
            for tag in ("failure", "error"):
                e = c.find(tag)
                if e is not None:
                    bad.append(f"{c.get('name')}: {e.get('message')}")
        print(
            f"{args.report}: suite {suite.get('name')}: {counted['tests']} tests, "
            f"{counted['failures']} failures, {counted['errors']} errors, "
            f"{counted['skipped']} skipped"
        )
    if total < args.min_tests:
        sys.exit(f"{args.report}: {total} tests, expected at least {args.min_tests}")
    if bad:
        sys.exit("failed:\n  " + "\n  ".join(bad))


if __name__ == "__main__":
    main()
