<?php
// `php -S` router: files are served as they are, PHP files run, and every other path goes to
// WordPress's index.php (so /wp-json/… reaches the REST API).
$_SERVER['WORDPRESS_CONFIG'] = getenv('WP_CONFIG_NAME');
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$file = '/usr/share/wordpress' . $path;
if ($path !== '/' && is_file($file)) {
    if (substr($file, -4) !== '.php') {
        return false;
    }
    chdir(dirname($file));
    require $file;
    return true;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = '/usr/share/wordpress/index.php';
chdir('/usr/share/wordpress');
require '/usr/share/wordpress/index.php';
