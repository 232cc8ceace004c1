import sys

if sys.argv[1:2] == ["playground"]:
    from bot.playground.run import main

    sys.exit(main(sys.argv[2:]))

from bot.app.cli import main

sys.exit(main())
