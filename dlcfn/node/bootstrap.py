"""Node bootstrap (work in progress): run by UserData as `bootstrap.py --role R --config F`."""

import argparse


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["master", "worker"], required=True)
    parser.add_argument("--config", required=True)
    parser.parse_args()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
