from shiprail.cli import main

main()
